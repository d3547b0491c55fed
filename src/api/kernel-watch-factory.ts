// The WatchFactory the daemon uses: real fanotify groups (src/watch on
// src/kernel and src/host). The only file of src/api that loads the FFI;
// the daemon's entry point builds it and hands it to the service.
import * as grpc from '@grpc/grpc-js';
import * as K from '../kernel/constants';
import { checkPermissionTarget, chooseReportMode, type GroupClass, type GroupSpec, type MarkSpec } from '../kernel/group';
import type { KernelFeatures } from '../kernel/probe';
import type { EventPump } from '../kernel/pump';
import { HandleResolver } from '../host/handle-resolver';
import type { Logger } from '../common/log';
import type { SelectionSpec } from '../watch/types';
import { Watch } from '../watch/watch';
import type { SubscribeRequest } from './convert';
import { ApiError } from './errors';
import type { PreparedWatch, WatchFactory, WatchHandle } from './watch-factory';

export function kernelWatchFactory(pump: EventPump, kernel: KernelFeatures, log: Logger): WatchFactory {
  const checkMark = (groupClass: GroupClass, mark: MarkSpec) => {
    if (groupClass !== 'notif') checkPermissionTarget(mark.path);
  };
  return {
    check(spec: GroupSpec): void {
      chooseReportMode(spec);
      for (const m of spec.marks) checkMark(spec.groupClass, m);
    },
    checkMark,
    async prepare(req: SubscribeRequest): Promise<PreparedWatch> {
      const resolver = chooseReportMode(req.group) === 'dfid_name' ? await HandleResolver.open(req.group.marks.map((m) => m.path)) : undefined;
      const features = {
        reportPidfd: kernel.initFlags.get(K.FAN_REPORT_PIDFD) === true && !req.skipPidVerification,
        evictable: kernel.markFlags.get(K.FAN_MARK_EVICTABLE) === true,
      };
      let used = false;
      const useOnce = () => {
        if (used) throw new Error('a prepared watch was opened or released twice');
        used = true;
      };
      return {
        open(id, options, onClose) {
          useOnce();
          try {
            return selectable(new Watch(id, req.group, features, options, pump, log, resolver, (w) => onClose(selectable(w))));
          } catch (err) {
            resolver?.close();
            throw err;
          }
        },
        release() {
          useOnce();
          resolver?.close();
        },
      };
    },
  };
}

/**
 * The watch as a WatchHandle. A Watch that cannot swap its selection yet
 * refuses ReplaceRules with UNIMPLEMENTED (a failed MarkResult); one that
 * can is returned as it is.
 */
function selectable(w: Watch): WatchHandle {
  const h = w as Watch & { replaceSelection?: (spec: SelectionSpec) => void };
  h.replaceSelection ??= () => {
    throw new ApiError(grpc.status.UNIMPLEMENTED, 'ReplaceRules: this daemon does not apply filters and rules yet');
  };
  return h as WatchHandle;
}
