// The typed client library for fanotifyd: what fanctl is built on, and
// what any other program that talks to the daemon can use.
export { CanonicalJson } from './canonical-json';
export { isUnixTarget, transportFor, type TlsOptions, type Transport } from './credentials';
export { ClientConfigError } from './errors';
export { FanotifyClient, type CallOptions, type ConnectOptions, type ServingStatus } from './fanotify-client';
export { runPolicyEngine, type Answer, type Decide } from './policy-engine';
export { ResumableWatch, type ResumableHandlers, type ResumeHow, type ResumeOptions, type StreamOpener } from './resumable-watch';
export { WatchStream, type Received, type WatchCall, type WatchHandlers, type WatchOpening, type WatchState } from './watch-stream';
export { EXPORT_HEADER, parseSequenceRange, type SequenceRange } from './export-record';
