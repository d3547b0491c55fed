// --host-root and --cri-endpoint: what they accept, and what a bad value is told.
import { expect } from 'chai';
import { ConfigError, parseConfig, type Config } from '../../src/daemon/config';

function refused(argv: string[], msg: RegExp): void {
  expect(() => parseConfig(argv)).to.throw(ConfigError, msg);
}

describe('unit: host root and CRI endpoint settings', () => {
  it('takes an absolute host root and a unix:/// CRI endpoint; both are off when not given', () => {
    const c = parseConfig(['--host-root', '/proc/1/root', '--cri-endpoint', 'unix:///run/containerd/containerd.sock']) as Config;
    expect(c.hostRoot).to.equal('/proc/1/root');
    expect(c.criEndpoint).to.equal('unix:///run/containerd/containerd.sock');
    const d = parseConfig([]) as Config;
    expect(d.hostRoot).to.equal(undefined);
    expect(d.criEndpoint).to.equal(undefined);
  });

  it('names the flag and says what to write', () => {
    refused(['--host-root', 'proc/1/root'], /^--host-root: give an absolute path \(\/proc\/<a host pid>\/root, or \/\)$/);
    refused(['--cri-endpoint', '/run/containerd/containerd.sock'], /^--cri-endpoint: give the runtime's socket as unix:\/\/\/PATH/);
    refused(['--cri-endpoint', '127.0.0.1:10010'], /^--cri-endpoint: /);
  });
});
