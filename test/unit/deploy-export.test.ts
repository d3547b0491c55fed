// The exporter's deploy files are checked like the daemon's: every flag and
// key they pass is one fanotify-export accepts, the ConfigMap carries the
// example files as they are, and the unit passes systemd-analyze.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import * as yaml from 'js-yaml';
import { parseExportConfig, type ExportConfig } from '../../src/export/config';

const DEPLOY = path.resolve(__dirname, '..', '..', '..', 'deploy');
const read = (f: string) => fs.readFileSync(path.join(DEPLOY, f), 'utf8');

/* eslint-disable @typescript-eslint/no-explicit-any */
describe('unit: deploy files of fanotify-export', () => {
  it('the DaemonSet sidecar runs the exporter with settings it accepts, on the daemon socket, with no capability', () => {
    const pod = (yaml.load(read('daemonset.yaml')) as any).spec.template.spec;
    const c = pod.containers.find((x: any) => x.name === 'fanotify-export');
    expect(c.command).to.deep.equal(['node', '/opt/fanotifyd/dist/src/export/main.js']);
    expect(c.securityContext.capabilities.drop).to.deep.equal(['ALL']);
    expect(c.securityContext.capabilities.add).to.equal(undefined);
    const configMap: any = yaml.load(read('fanotify-export.configmap.yaml'));
    expect(configMap.data['export.json']).to.equal(read('fanotify-export.json'));
    expect(configMap.data['subscribe.json']).to.equal(read('export-subscribe.json'));
    const mount = c.volumeMounts.find((m: any) => m.name === 'export-config').mountPath;
    // The file as the pod sees it, with the node name Kubernetes puts in.
    const dir = fs.mkdtempSync('/tmp/export-deploy-');
    fs.writeFileSync(path.join(dir, 'export.json'), configMap.data['export.json']);
    const args = c.args.map((a: string) => a.replace(`${mount}/`, `${dir}/`).replace('$(NODE_NAME)', 'node-1'));
    const cfg = parseExportConfig(args) as ExportConfig;
    fs.rmSync(dir, { recursive: true });
    expect(cfg.node).to.equal('node-1');
    expect(cfg.subscribe).to.equal(`${mount}/subscribe.json`);
    expect(c.volumeMounts.find((m: any) => m.name === 'run').mountPath).to.equal(path.dirname(cfg.daemon.slice('unix:'.length)));
    expect(cfg.replicas).to.equal(3);
  });

  it('the systemd unit starts the exporter with flags it accepts, and passes systemd-analyze verify', function () {
    const unit = read('fanotify-export.service');
    const exec = /^ExecStart=(.*)$/m.exec(unit)![1].split(/\s+/);
    expect(exec.slice(0, 4)).to.deep.equal(['/usr/bin/node', '/opt/fanotifyd/dist/src/export/main.js', '--config', '/etc/fanotify-export/export.json']);
    expect(() => parseExportConfig(['--config', path.join(DEPLOY, 'fanotify-export.json')])).to.not.throw();
    expect(unit).to.match(/^RestartPreventExitStatus=2$/m);
    const analyze = spawnSync('systemd-analyze', ['verify', path.join(DEPLOY, 'fanotify-export.service')], { encoding: 'utf8' });
    if (analyze.error) {
      console.log(`      skipped the verify: systemd-analyze cannot run here (${analyze.error.message})`);
      return;
    }
    expect(analyze.status, analyze.stderr).to.equal(0);
  });
});
