// The deploy files are checked, not just shipped: every flag they pass is
// one the daemon accepts, and the systemd unit passes systemd-analyze.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import * as yaml from 'js-yaml';
import { parseConfig, SETTINGS, type Config } from '../../src/daemon/config';

const DEPLOY = path.resolve(__dirname, '..', '..', '..', 'deploy');

/* eslint-disable @typescript-eslint/no-explicit-any */
describe('unit: deploy files', () => {
  it('the DaemonSet passes flags the daemon accepts, and probes readiness with fanctl health', () => {
    const ds: any = yaml.load(fs.readFileSync(path.join(DEPLOY, 'daemonset.yaml'), 'utf8'));
    expect(ds.kind).to.equal('DaemonSet');
    const pod = ds.spec.template.spec;
    expect(pod.hostPID).to.equal(true);
    const c = pod.containers[0];
    const cfg = parseConfig(c.args) as Config;
    expect(cfg.listen).to.deep.equal(['unix:/run/fanotifyd/fanotifyd.sock']);
    expect(c.securityContext.capabilities.add).to.include('SYS_ADMIN');
    expect(c.readinessProbe.exec.command).to.include('health');
    expect(pod.volumes.find((v: any) => v.name === 'run').hostPath.path).to.equal('/run/fanotifyd');
  });

  it('the DaemonSet runs on a read-only root: what the daemon writes (its sockets, an audit file) is on a writable volume', () => {
    const ds: any = yaml.load(fs.readFileSync(path.join(DEPLOY, 'daemonset.yaml'), 'utf8'));
    const c = ds.spec.template.spec.containers[0];
    expect(c.securityContext.readOnlyRootFilesystem).to.equal(true);
    const writable: string[] = c.volumeMounts.filter((m: any) => !m.readOnly).map((m: any) => m.mountPath);
    const cfg = parseConfig(c.args) as Config;
    const written = [...cfg.listen.filter((a) => a.startsWith('unix:')).map((a) => path.dirname(a.slice('unix:'.length))), ...(cfg.auditFile ? [path.dirname(cfg.auditFile)] : [])];
    expect(written).to.not.be.empty;
    for (const dir of written) expect(writable.some((m) => dir === m || dir.startsWith(`${m}/`)), dir).to.equal(true);
  });

  it('the example config file is valid, and the image starts with it', () => {
    const cfg = parseConfig(['--config', path.join(DEPLOY, 'fanotifyd.json')]) as Config;
    expect(cfg.metrics).to.equal('127.0.0.1:9464');
    const containerfile = fs.readFileSync(path.join(DEPLOY, 'Containerfile'), 'utf8');
    const copied = /^COPY deploy\/fanotifyd\.json (\S+)$/m.exec(containerfile)![1];
    const cmd: string[] = JSON.parse(/^CMD (\[.*\])$/m.exec(containerfile)![1]);
    expect(cmd).to.deep.equal(['--config', copied]);
    expect(JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(containerfile)![1])).to.deep.equal(['node', '/opt/fanotifyd/dist/src/daemon/main.js']);
  });

  it('docs/operations.md lists every config file key', () => {
    const ops = fs.readFileSync(path.join(DEPLOY, '..', 'docs', 'operations.md'), 'utf8');
    for (const key of Object.keys(SETTINGS)) expect(ops, key).to.include(`| \`${key}\` |`);
  });

  it('the systemd unit starts the daemon with flags it accepts', () => {
    const unit = fs.readFileSync(path.join(DEPLOY, 'fanotifyd.service'), 'utf8');
    const exec = /^ExecStart=(.*)$/m.exec(unit)![1].split(/\s+/);
    expect(exec.slice(0, 2)).to.deep.equal(['/usr/bin/node', '/opt/fanotifyd/dist/src/daemon/main.js']);
    expect(parseConfig(exec.slice(2))).to.have.property('listen');
    expect(unit).to.match(/^RuntimeDirectory=fanotifyd$/m);
    // Exit code 2 is a bad setting: restarting would only repeat it.
    expect(unit).to.match(/^Restart=on-failure$/m);
    expect(unit).to.match(/^RestartPreventExitStatus=2$/m);
  });

  it('the systemd unit is Type=notify with a watchdog, a file descriptor store and a state directory', () => {
    const unit = fs.readFileSync(path.join(DEPLOY, 'fanotifyd.service'), 'utf8');
    expect(unit).to.match(/^Type=notify$/m);
    expect(unit).to.match(/^NotifyAccess=main$/m);
    expect(Number(/^FileDescriptorStoreMax=(\d+)$/m.exec(unit)?.[1])).to.be.above(0);
    expect(Number(/^WatchdogSec=(\d+)$/m.exec(unit)?.[1])).to.be.above(0);
    expect(unit).to.match(/^StateDirectory=fanotifyd$/m);
    // systemctl stop must release the held opens: the store may not outlive the unit.
    expect(unit).to.not.match(/^FileDescriptorStorePreserve=yes$/m);
  });

  it('the systemd unit passes systemd-analyze verify', function () {
    const analyze = spawnSync('systemd-analyze', ['verify', path.join(DEPLOY, 'fanotifyd.service')], { encoding: 'utf8' });
    if (analyze.error) {
      console.log(`      skipped: systemd-analyze cannot run here (${analyze.error.message})`);
      this.skip();
    }
    expect(analyze.status, analyze.stderr).to.equal(0);
    expect(analyze.stderr).to.equal('');
  });
});
