// The host lookups under the one name they once shared. Each now has a file
// of its own (process.ts, process-cache.ts, fd-path.ts,
// handle-resolver.ts, event.ts); import from those.
export { CMDLINE_MAX_BYTES, isOwnThread, readProcess, threadGroupOf, unknownProcess, type ProcessInfo } from './process';
export { ProcessCache } from './process-cache';
export { fdPath } from './fd-path';
export { HandleResolver } from './handle-resolver';
export { bareEvent, enrich, joinEntry, type FsEvent, type ResolvedEntry } from './event';
