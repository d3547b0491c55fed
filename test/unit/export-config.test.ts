// fanotify-export's settings: flags over file over defaults, and one line
// naming the flag or the file's key for what is wrong.
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseExportConfig, type ExportConfig } from '../../src/export/config';

const parse = (argv: string[]) => parseExportConfig(argv) as ExportConfig;
const error = (argv: string[]) => {
  try {
    parseExportConfig(argv);
  } catch (err) {
    return (err as Error).message;
  }
  return 'no error';
};

describe('unit: export config', () => {
  it('takes defaults, then the file, then flags', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'export-config-'));
    const file = path.join(dir, 'c.json');
    fs.writeFileSync(file, JSON.stringify({ stream: 'FLEET', window: 64, nats: ['nats://a:4222', 'nats://b:4222'] }));
    const c = parse(['--subscribe', '/s.json', '--config', file, '--window', '128']);
    expect({ stream: c.stream, window: c.window, nats: c.nats, prefix: c.prefix, format: c.format }).to.deep.equal({
      stream: 'FLEET',
      window: 128,
      nats: ['nats://a:4222', 'nats://b:4222'],
      prefix: 'fanotify',
      format: 'protobuf',
    });
    expect(error(['--subscribe', '/s.json', '--config', file, '--stream', 'a.b'])).to.match(/^--stream: "a.b": a stream name may hold only/);
    fs.writeFileSync(file, JSON.stringify({ window: 0 }));
    expect(error(['--subscribe', '/s.json', '--config', file])).to.equal(`config ${file}: window: 0 is below 1`);
    fs.rmSync(dir, { recursive: true });
  });

  it('names what is missing or wrong', () => {
    expect(error([])).to.match(/^--subscribe: missing/);
    expect(error(['--subscribe', 's', '--nats', 'http://x'])).to.match(/^--nats: "http:\/\/x": expected nats:\/\/HOST:PORT/);
    expect(error(['--subscribe', 's', '--metrics', '0.0.0.0:9465'])).to.match(/^--metrics: .*loopback/);
    expect(error(['--subscribe', 's', '--duplicate-window-ms', '5000', '--stream-max-age-ms', '1000'])).to.match(/^--duplicate-window-ms: 5000 exceeds --stream-max-age-ms/);
    expect(error(['--subscribe', 's', '--bogus'])).to.match(/^--bogus: unknown option/);
  });
});
