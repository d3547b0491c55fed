// A path between the host's mount table and a container's: through the
// filesystem (major:minor) and the directory of it each mount shows.
import { expect } from 'chai';
import { translate } from '../../src/host/container-path';
import { parseMountInfo } from '../../src/host/mounts';

const host = parseMountInfo(
  [
    '22 1 253:1 / / rw - ext4 /dev/vda1 rw',
    '30 22 0:40 / /srv rw - tmpfs none rw',
    '31 22 0:50 / /var/lib/containers/storage/overlay/abc/merged rw - overlay overlay rw',
  ].join('\n'),
);
// A container: its root the overlay, the host's /tmp/share at /data, the host's /srv/app at /app, a tmpfs of its own.
const container = parseMountInfo(
  [
    '100 90 0:50 / / rw - overlay overlay rw',
    '101 100 253:1 /tmp/share /data rw - ext4 /dev/vda1 rw',
    '102 100 0:40 /app /app rw - tmpfs none rw',
    '103 100 0:60 / /run rw - tmpfs none rw',
  ].join('\n'),
);

describe('unit: container paths', () => {
  it('host to container: bind mounts, a subdirectory of a mount, the root', () => {
    expect(translate(host, container, '/tmp/share/f')).to.equal('/data/f');
    expect(translate(host, container, '/tmp/share')).to.equal('/data');
    expect(translate(host, container, '/srv/app/conf/x.yaml')).to.equal('/app/conf/x.yaml');
    expect(translate(host, container, '/var/lib/containers/storage/overlay/abc/merged/usr/bin/cat')).to.equal('/usr/bin/cat');
  });

  it('container to host, and nothing for what the other side does not show', () => {
    expect(translate(container, host, '/data/f')).to.equal('/tmp/share/f');
    expect(translate(container, host, '/usr/bin/cat')).to.equal('/var/lib/containers/storage/overlay/abc/merged/usr/bin/cat');
    expect(translate(container, host, '/run/secret')).to.equal('');
    expect(translate(host, container, '/etc/passwd')).to.equal('');
    expect(translate(host, container, '/srv/other/f')).to.equal('');
  });

  it('does not take a name that only starts like a mount point for it', () => {
    expect(translate(container, host, '/database/f')).to.equal('/var/lib/containers/storage/overlay/abc/merged/database/f');
    expect(translate(host, container, '/tmp/shared/f')).to.equal('');
  });
});
