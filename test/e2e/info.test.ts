// GetInfo says what the kernel supports; the kernel must agree. Every event
// type GetInfo lists is subscribed for real, in a group of the class and
// report mode it needs, on a directory this test owns.
import * as fs from 'node:fs';
import { expect } from 'chai';
import { type Client, connect, type Daemon, getInfo, startDaemon, tempDir, WatchStream } from '../fixtures/harness';

/* eslint-disable @typescript-eslint/no-explicit-any */
const MNT_EVENTS = new Set(['EVENT_TYPE_MNT_ATTACH', 'EVENT_TYPE_MNT_DETACH']);
const PERMISSION = new Set(['EVENT_TYPE_OPEN_PERM', 'EVENT_TYPE_ACCESS_PERM', 'EVENT_TYPE_OPEN_EXEC_PERM']);

describe('e2e: GetInfo matches the kernel', function () {
  this.timeout(60_000);
  let daemon: Daemon;
  let client: Client;
  let info: any;
  let dir: string;
  before(async () => {
    daemon = await startDaemon();
    client = connect(daemon.address);
    info = await getInfo(client);
    dir = tempDir();
  });
  after(async () => {
    client.close();
    expect(await daemon.stop()).to.equal(0);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('reports the release, the sysctls and the limits', () => {
    expect(info.kernel_release).to.equal(fs.readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim());
    for (const [field, file] of [['max_queued_events', 'max_queued_events'], ['max_user_groups', 'max_user_groups'], ['max_user_marks', 'max_user_marks']]) {
      expect(Number(info.kernel_limits[field]), field).to.equal(Number(fs.readFileSync(`/proc/sys/fs/fanotify/${file}`, 'utf8')));
    }
    expect(info.daemon_version).to.equal(JSON.parse(fs.readFileSync(`${__dirname}/../../../package.json`, 'utf8')).version);
    expect(info.init_flags).to.include('FAN_CLASS_CONTENT');
  });

  it('reports the bounds on filters and rules, and a Subscribe past one is refused', async () => {
    const l = info.limits;
    expect({ m: l.max_matches, g: l.max_globs, i: l.max_ids, c: l.max_coalesce_ms, e: l.max_events_per_second }).to.deep.equal({ m: 256, g: 1024, i: 1024, c: 60_000, e: 1_000_000 });
    // The reported bound is the enforced one: one Match past max_matches is refused, max_matches itself is not.
    const subscribe = async (n: number) => {
      const s = new WatchStream(client, { group_class: 'GROUP_CLASS_NOTIF', marks: [{ path: dir, scope: 'MARK_SCOPE_INODE', events: ['EVENT_TYPE_OPEN'] }], exclude: Array.from({ length: n }, () => ({ uids: [12345] })) });
      try {
        return await Promise.race([s.subscribed(), s.ended()]).catch((e: Error) => e.message);
      } finally {
        s.cancel();
      }
    };
    expect(await subscribe(l.max_matches)).to.have.property('watch_id');
    expect(String(await subscribe(l.max_matches + 1))).to.match(/over the limit of 256/);
    const coalesce = new WatchStream(client, { group_class: 'GROUP_CLASS_NOTIF', marks: [{ path: dir, scope: 'MARK_SCOPE_INODE', events: ['EVENT_TYPE_OPEN'] }], coalesce_ms: l.max_coalesce_ms + 1 });
    const refused = await Promise.race([coalesce.subscribed(), coalesce.ended()]).catch((e: Error) => e.message);
    coalesce.cancel();
    expect(String(refused)).to.match(/over the daemon's maximum of 60000/);
  });

  it('every listed event type can be subscribed for real', async () => {
    const types: string[] = info.event_types.filter((t: string) => t !== 'EVENT_TYPE_Q_OVERFLOW');
    expect(types.length).to.be.greaterThan(10);
    for (const t of types) {
      const sub: any = {
        group_class: t === 'EVENT_TYPE_PRE_ACCESS' ? 'GROUP_CLASS_PRE_CONTENT' : PERMISSION.has(t) ? 'GROUP_CLASS_CONTENT' : 'GROUP_CLASS_NOTIF',
        marks: [
          MNT_EVENTS.has(t)
            ? // A notification mark on the daemon's own mount namespace: harmless, and always there.
              { path: '/proc/self/ns/mnt', scope: 'MARK_SCOPE_MOUNT_NAMESPACE', events: [t] }
            : { path: dir, scope: t === 'EVENT_TYPE_FS_ERROR' ? 'MARK_SCOPE_FILESYSTEM' : 'MARK_SCOPE_INODE', events: [t] },
        ],
      };
      const s = new WatchStream(client, sub);
      try {
        const r = await Promise.race([s.subscribed(), s.ended()]).catch((e: Error) => e.message);
        expect(r, `${t}: ${JSON.stringify(r)}`).to.have.property('watch_id');
      } finally {
        s.cancel();
      }
    }
  });

  it('every listed class and scope can be used', async () => {
    for (const cls of info.group_classes) {
      for (const scope of info.mark_scopes) {
        const mark =
          scope === 'MARK_SCOPE_MOUNT_NAMESPACE' ? { path: '/proc/self/ns/mnt', scope, events: ['EVENT_TYPE_MNT_ATTACH'] } : { path: dir, scope, events: ['EVENT_TYPE_OPEN'] };
        if (scope === 'MARK_SCOPE_MOUNT_NAMESPACE' && cls !== 'GROUP_CLASS_NOTIF') continue; // mount events are notifications
        const s = new WatchStream(client, { group_class: cls, marks: [mark] });
        try {
          const r = await Promise.race([s.subscribed(), s.ended()]).catch((e: Error) => e.message);
          expect(r, `${cls} ${scope}: ${JSON.stringify(r)}`).to.have.property('watch_id');
        } finally {
          s.cancel();
        }
      }
    }
  });
});
