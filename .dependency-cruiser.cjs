// The direction of imports in src/: each folder imports only from the ones
// before it (docs/architecture.md), so the data path reads one way and a
// layer can be tested without the ones above it. Type-only imports count:
// a type from a higher layer couples the two just the same.
const layer = (from, allowed, comment) => ({
  name: `${from}-imports-only-${allowed.length ? allowed.join('-') : 'itself'}`,
  comment,
  severity: 'error',
  from: { path: `^src/${from}/` },
  to: { path: '^src/', pathNot: `^src/(${[from, ...allowed].join('|')})/` },
});

// The API's contract as the clients see it: the loader of the .proto and the
// types generated from it, and nothing of the server behind them.
const CONTRACT = '^src/(common/|api/proto\\.ts$|api/gen/)';
const client = (from, allowed, comment) => ({
  name: `${from}-imports-only-the-contract`,
  comment,
  severity: 'error',
  from: { path: `^src/${from}/` },
  to: { path: '^src/', pathNot: [`^src/(${[from, ...allowed].join('|')})/`, CONTRACT] },
});

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'A cycle makes two files one module that nobody can read or test alone.',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    layer('common', [], 'What every layer uses depends on no layer.'),
    layer('kernel', ['common'], 'The fanotify ABI and syscalls know nothing of /proc, watches or gRPC.'),
    layer('host', ['common', 'kernel'], 'What the host says about an event; no watch, no API.'),
    layer('watch', ['common', 'kernel', 'host'], 'One group\'s life; it does not know who is listening.'),
    layer('api', ['common', 'kernel', 'host', 'watch'], 'The gRPC service; not the process that hosts it.'),
    {
      name: 'daemon-imports-no-client-side',
      comment: 'The daemon is a server; the CLI, the client library and exporters are its users.',
      severity: 'error',
      from: { path: '^src/daemon/' },
      to: { path: '^src/(cli|client|export)/' },
    },
    client('client', [], 'The typed client library speaks the contract only.'),
    client('cli', ['client'], 'fanctl is a client like any other.'),
    client('export', ['client'], 'Exporters are clients like any other.'),
    {
      name: 'koffi-only-in-kernel',
      comment: 'The FFI stays in one small module (src/kernel) that declares only what Node lacks.',
      severity: 'error',
      from: { pathNot: '^src/kernel/' },
      to: { path: 'node_modules/koffi/' },
    },
    {
      name: 'src-imports-no-tests',
      comment: 'What ships does not depend on tests or the benchmark.',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(test|bench)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^dist/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'] },
  },
};
