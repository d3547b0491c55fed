import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { ConfigError, isLoopback, parseAddress, parseConfig, SETTINGS, USAGE, type Config } from '../../src/daemon/config';
import { DEFAULTS } from '../../src/daemon/defaults';

describe('unit: config', () => {
  it('starts from the defaults', () => {
    const c = parseConfig([]) as Config;
    expect(c.listen).to.deep.equal(['unix:/run/fanotifyd/fanotifyd.sock']);
    expect(c.defaultVerdictTimeoutMs).to.equal(DEFAULTS.defaultVerdictTimeoutMs);
    expect(c.logLevel).to.equal('info');
    expect(c.resumeBufferTotalBytes).to.equal(512 * 1024 * 1024);
    expect(c.resumeBufferTotalBytes).to.be.at.least(c.resumeBufferBytes);
    // Not given: eight buffers of whatever --resume-buffer-bytes is, so raising that alone keeps the daemon starting.
    expect((parseConfig(['--resume-buffer-bytes', '1073741824']) as Config).resumeBufferTotalBytes).to.equal(8 * 1073741824);
  });

  it('takes repeated --listen and numeric flags', () => {
    const c = parseConfig(['--listen', 'unix:/tmp/a.sock', '--listen', '[::1]:5000', '--insecure', '--queue-capacity', '10', '--log-level', 'debug']) as Config;
    expect(c.listen).to.deep.equal(['unix:/tmp/a.sock', '[::1]:5000']);
    expect(c.queueCapacity).to.equal(10);
    expect(c.logLevel).to.equal('debug');
    expect(parseConfig(['--help'])).to.equal('help');
    expect(parseConfig(['--version'])).to.equal('version');
  });

  const bad: Array<[string[], RegExp]> = [
    [['--listen', '10.0.0.1:80'], /^--listen: 10\.0\.0\.1:80: plain TCP is allowed only on loopback/],
    [['--listen', 'unix:relative.sock'], /must be absolute/],
    [['--listen', 'nonsense'], /expected unix:\/path or HOST:PORT/],
    [['--listen', '127.0.0.1:70000'], /port 70000 is out of range/],
    [['--listen', '127.0.0.1:7000'], /plain TCP needs --insecure/],
    [['--listen', '10.0.0.1:80', '--insecure'], /only on loopback/],
    [['--tls-cert', '/c.pem'], /^--tls-key: missing: TLS needs --tls-cert, --tls-key and --tls-client-ca together/],
    [['--verdict-timeout-ms=-5'], /^--verdict-timeout-ms: "-5" is not a positive integer$/],
    [['--max-watches', '1.5'], /^--max-watches: "1.5" is not a positive integer$/],
    [['--max-watches', '4294967296'], /^--max-watches: 4294967296 is above 2\^32-1$/],
    [['--verdict-timeout-ms', '90000'], /^--verdict-timeout-ms: 90000 exceeds --max-verdict-timeout-ms \(60000\)$/],
    [['--batch-events', '5000'], /^--batch-events: 5000 exceeds --max-batch-events \(4096\)$/],
    [['--log-level', 'loud'], /^--log-level: "loud" is not one of debug, info, warn, error$/],
    [['--bogus'], /^--bogus: unknown option; fanotifyd --help lists them$/],
    [['--listen'], /^--listen: needs a value$/],
    [['--insecure=yes'], /^--insecure: is a switch and takes no value/],
    [['stray'], /^Unexpected argument 'stray': every setting is a --flag$/],
    [['--metrics', '0.0.0.0:9464'], /^--metrics: 0\.0\.0\.0:9464: give a loopback HOST:PORT/],
    [['--metrics', 'unix:/run/m.sock'], /^--metrics: unix:\/run\/m\.sock: give a loopback HOST:PORT/],
    [['--metrics', '9464'], /^--metrics: 9464: expected unix:\/path or HOST:PORT$/],
    [['--socket-group', ''], /^--socket-group: must not be empty$/],
    [['--resume-buffer-total-bytes', '1048576'], /^--resume-buffer-total-bytes: 1048576 is below --resume-buffer-bytes \(67108864\): raise --resume-buffer-total-bytes or lower --resume-buffer-bytes$/],
    [['--resume-buffer-bytes', '1073741824', '--resume-buffer-total-bytes', '536870912'], /^--resume-buffer-total-bytes: 536870912 is below --resume-buffer-bytes \(1073741824\)/],
    [['--resume-buffer-total-bytes', '0'], /^--resume-buffer-total-bytes: /],
  ];
  for (const [argv, re] of bad) {
    it(`refuses ${argv.join(' ')} in one line naming the flag`, () => {
      expect(() => parseConfig(argv)).to.throw(ConfigError, re);
      expect(() => parseConfig(argv)).to.throw(ConfigError, /^[^\n]+$/);
    });
  }

  it('takes loopback metrics addresses, and --no-insecure turns the switch off', () => {
    expect((parseConfig(['--metrics', '127.0.0.1:0']) as Config).metrics).to.equal('127.0.0.1:0');
    expect((parseConfig(['--metrics', '[::1]:9464']) as Config).metrics).to.equal('[::1]:9464');
    expect((parseConfig(['--insecure', '--no-insecure']) as Config).insecure).to.equal(false);
  });

  it('--help is generated from the settings: every one, with its default', () => {
    for (const [name, s] of Object.entries(SETTINGS)) {
      expect(USAGE, name).to.include(`--${name}`);
      if ('default' in s && typeof s.default === 'number') expect(USAGE, name).to.include(`(default ${s.default})`);
    }
    expect(USAGE).to.match(/Exit status: 0 .*; 1 .*; 2 bad configuration/);
  });

  it('takes TLS files together, and then TCP on any address', () => {
    const c = parseConfig(['--listen', '0.0.0.0:7000', '--tls-cert', '/c', '--tls-key', '/k', '--tls-client-ca', '/ca']) as Config;
    expect(c.tls).to.deep.equal({ cert: '/c', key: '/k', clientCa: '/ca' });
  });

  it('knows loopback addresses', () => {
    expect(['127.0.0.1', '127.1.2.3', '::1', 'localhost'].map(isLoopback)).to.deep.equal([true, true, true, true]);
    expect(['0.0.0.0', '10.1.1.1', '::', 'example.com'].map(isLoopback)).to.deep.equal([false, false, false, false]);
    expect(parseAddress('[::1]:9')).to.deep.equal({ kind: 'tcp', host: '::1', port: 9 });
  });
});

describe('unit: config file', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fanotifyd-cfg-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = (doc: unknown) => {
    const f = path.join(dir, 'c.json');
    fs.writeFileSync(f, typeof doc === 'string' ? doc : JSON.stringify(doc));
    return f;
  };

  it('reads every flag from the file, and flags given win', () => {
    const f = file({ listen: ['unix:/tmp/x.sock'], 'queue-capacity': 77, 'log-level': 'warn', metrics: '127.0.0.1:9000' });
    const c = parseConfig(['--config', f, '--log-level', 'debug']) as Config;
    expect(c.listen).to.deep.equal(['unix:/tmp/x.sock']);
    expect(c.queueCapacity).to.equal(77);
    expect(c.logLevel).to.equal('debug');
    expect(c.metrics).to.equal('127.0.0.1:9000');
  });

  it('takes the handshake and idle timeouts from flags or the file', () => {
    expect((parseConfig([]) as Config).handshakeTimeoutMs).to.equal(DEFAULTS.handshakeTimeoutMs);
    expect((parseConfig(['--handshake-timeout-ms', '250']) as Config).handshakeTimeoutMs).to.equal(250);
    const c = parseConfig(['--config', file({ 'handshake-timeout-ms': 500, 'idle-timeout-ms': 60000 })]) as Config;
    expect([c.handshakeTimeoutMs, c.idleTimeoutMs]).to.deep.equal([500, 60000]);
    expect(() => parseConfig(['--handshake-timeout-ms', '0'])).to.throw(ConfigError, /--handshake-timeout-ms: 0 is not a positive integer/);
    expect(() => parseConfig(['--handshake-timeout-ms', '3000000000'])).to.throw(ConfigError, /--handshake-timeout-ms: 3000000000 is above the largest timeout, 2147483647 ms/);
    expect(() => parseConfig(['--idle-timeout-ms', '2147483648'])).to.throw(ConfigError, /--idle-timeout-ms: 2147483648 is above/);
    expect((parseConfig(['--verdict-timeout-ms', '2147483647', '--max-verdict-timeout-ms', '2147483647']) as Config).maxVerdictTimeoutMs).to.equal(2 ** 31 - 1);
  });

  it('accepts every flag in --help as a key, except --config itself', () => {
    const flags = [...USAGE.matchAll(/--([a-z][a-z-]+)/g)].map((m) => m[1]).filter((f) => !['config', 'help', 'version'].includes(f));
    expect(flags).to.include('handshake-timeout-ms');
    for (const flag of new Set(flags)) {
      // An unknown key is refused by name; a known one with a wrong type is refused for its value.
      let message = '';
      try {
        parseConfig(['--config', file({ [flag]: { wrong: 'type' } })]);
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message, flag).to.not.match(/is not a setting/);
    }
  });

  it('names the file and the key, in one line, when the file is wrong', () => {
    const f = file({});
    const cases: Array<[unknown, RegExp]> = [
      [{ 'queue-capasity': 1 }, /^config \S+c\.json: queue-capasity: not a setting; the keys are the flags' names: listen, /],
      [{ listen: 'unix:/x' }, /^config \S+c\.json: listen: expected a list, got string "unix:\/x"$/],
      [{ listen: ['unix:/x', 'nonsense'] }, /^config \S+c\.json: listen\[1\]: nonsense: expected unix:\/path or HOST:PORT$/],
      [{ listen: ['unix:/x', '10.0.0.1:80'] }, /^config \S+c\.json: listen\[1\]: 10\.0\.0\.1:80: plain TCP is allowed only on loopback/],
      [{ insecure: 'yes' }, /^config \S+c\.json: insecure: expected true or false, got string "yes"$/],
      [{ 'queue-capacity': -3 }, /^config \S+c\.json: queue-capacity: -3 is not a positive integer$/],
      [{ 'queue-capacity': 2.5 }, /^config \S+c\.json: queue-capacity: 2\.5 is not a positive integer$/],
      [{ metrics: '10.1.1.1:9464' }, /^config \S+c\.json: metrics: 10\.1\.1\.1:9464: give a loopback HOST:PORT/],
      [{ 'log-level': 3 }, /^config \S+c\.json: log-level: 3 is not one of debug, info, warn, error$/],
      ['{ nope', /^config \S+c\.json: .*JSON/],
      [[1, 2], /^config \S+c\.json: expected a JSON object of flag names and values$/],
    ];
    for (const [doc, re] of cases) {
      file(doc);
      expect(() => parseConfig(['--config', f]), JSON.stringify(doc)).to.throw(ConfigError, re);
    }
    expect(() => parseConfig(['--config', path.join(dir, 'missing.json')])).to.throw(ConfigError, /^config \S+missing\.json: ENOENT/);
  });

  it('names the flag, not the file, when the flag given overrides the file', () => {
    const f = file({ 'queue-capacity': 5, 'verdict-timeout-ms': 1000 });
    expect(() => parseConfig(['--config', f, '--queue-capacity', 'x'])).to.throw(ConfigError, /^--queue-capacity: "x" is not a positive integer$/);
    // A flag fixes what the file got wrong.
    file({ 'queue-capacity': -1 });
    expect((parseConfig(['--config', f, '--queue-capacity', '9']) as Config).queueCapacity).to.equal(9);
  });
});
