// fanotify ABI constants, from include/uapi/linux/fanotify.h. Values are the
// kernel's and never change once released; a unit test pins the ones whose
// mistakes would be silent (record layout offsets and sizes).

// fanotify_init(2) flags.
export const FAN_CLOEXEC = 0x0000_0001;
export const FAN_NONBLOCK = 0x0000_0002;
export const FAN_CLASS_NOTIF = 0x0000_0000;
export const FAN_CLASS_CONTENT = 0x0000_0004;
export const FAN_CLASS_PRE_CONTENT = 0x0000_0008;
export const FAN_UNLIMITED_QUEUE = 0x0000_0010;
export const FAN_UNLIMITED_MARKS = 0x0000_0020;
export const FAN_ENABLE_AUDIT = 0x0000_0040;
export const FAN_REPORT_PIDFD = 0x0000_0080; // 5.15
export const FAN_REPORT_TID = 0x0000_0100;
export const FAN_REPORT_FID = 0x0000_0200; // 5.1
export const FAN_REPORT_DIR_FID = 0x0000_0400; // 5.9
export const FAN_REPORT_NAME = 0x0000_0800; // 5.9
export const FAN_REPORT_TARGET_FID = 0x0000_1000; // 5.17
export const FAN_REPORT_FD_ERROR = 0x0000_2000; // 6.13
export const FAN_REPORT_MNT = 0x0000_4000; // 6.14
export const FAN_REPORT_DFID_NAME = FAN_REPORT_DIR_FID | FAN_REPORT_NAME;

export const INIT_FLAG_NAMES: ReadonlyArray<[number, string]> = [
  [FAN_CLOEXEC, 'FAN_CLOEXEC'],
  [FAN_NONBLOCK, 'FAN_NONBLOCK'],
  [FAN_CLASS_CONTENT, 'FAN_CLASS_CONTENT'],
  [FAN_CLASS_PRE_CONTENT, 'FAN_CLASS_PRE_CONTENT'],
  [FAN_UNLIMITED_QUEUE, 'FAN_UNLIMITED_QUEUE'],
  [FAN_UNLIMITED_MARKS, 'FAN_UNLIMITED_MARKS'],
  [FAN_ENABLE_AUDIT, 'FAN_ENABLE_AUDIT'],
  [FAN_REPORT_PIDFD, 'FAN_REPORT_PIDFD'],
  [FAN_REPORT_TID, 'FAN_REPORT_TID'],
  [FAN_REPORT_FID, 'FAN_REPORT_FID'],
  [FAN_REPORT_DIR_FID, 'FAN_REPORT_DIR_FID'],
  [FAN_REPORT_NAME, 'FAN_REPORT_NAME'],
  [FAN_REPORT_TARGET_FID, 'FAN_REPORT_TARGET_FID'],
  [FAN_REPORT_FD_ERROR, 'FAN_REPORT_FD_ERROR'],
  [FAN_REPORT_MNT, 'FAN_REPORT_MNT'],
];

/** Names of the flags set in an init flags word (FAN_CLASS_NOTIF when no class bit). */
export function initFlagNames(flags: number): string[] {
  const names: string[] = [];
  if ((flags & (FAN_CLASS_CONTENT | FAN_CLASS_PRE_CONTENT)) === 0) names.push('FAN_CLASS_NOTIF');
  for (const [bit, name] of INIT_FLAG_NAMES) if (flags & bit) names.push(name);
  return names;
}

// fanotify_mark(2) flags.
export const FAN_MARK_ADD = 0x0000_0001;
export const FAN_MARK_REMOVE = 0x0000_0002;
export const FAN_MARK_DONT_FOLLOW = 0x0000_0004;
export const FAN_MARK_ONLYDIR = 0x0000_0008;
export const FAN_MARK_IGNORED_MASK = 0x0000_0020;
export const FAN_MARK_IGNORED_SURV_MODIFY = 0x0000_0040;
export const FAN_MARK_FLUSH = 0x0000_0080;
export const FAN_MARK_EVICTABLE = 0x0000_0200;
export const FAN_MARK_IGNORE = 0x0000_0400;
export const FAN_MARK_INODE = 0x0000_0000;
export const FAN_MARK_MOUNT = 0x0000_0010;
export const FAN_MARK_FILESYSTEM = 0x0000_0100;
export const FAN_MARK_MNTNS = 0x0000_0110;

// Event mask bits. The mask is 64 bits in the ABI, but every bit the kernel
// defines sits in the low 32, so JavaScript numbers hold it exactly.
export const FAN_ACCESS = 0x0000_0001;
export const FAN_MODIFY = 0x0000_0002;
export const FAN_ATTRIB = 0x0000_0004;
export const FAN_CLOSE_WRITE = 0x0000_0008;
export const FAN_CLOSE_NOWRITE = 0x0000_0010;
export const FAN_OPEN = 0x0000_0020;
export const FAN_MOVED_FROM = 0x0000_0040;
export const FAN_MOVED_TO = 0x0000_0080;
export const FAN_CREATE = 0x0000_0100;
export const FAN_DELETE = 0x0000_0200;
export const FAN_DELETE_SELF = 0x0000_0400;
export const FAN_MOVE_SELF = 0x0000_0800;
export const FAN_OPEN_EXEC = 0x0000_1000;
export const FAN_Q_OVERFLOW = 0x0000_4000;
export const FAN_FS_ERROR = 0x0000_8000;
export const FAN_OPEN_PERM = 0x0001_0000;
export const FAN_ACCESS_PERM = 0x0002_0000;
export const FAN_OPEN_EXEC_PERM = 0x0004_0000;
export const FAN_PRE_ACCESS = 0x0010_0000;
export const FAN_MNT_ATTACH = 0x0100_0000;
export const FAN_MNT_DETACH = 0x0200_0000;
export const FAN_EVENT_ON_CHILD = 0x0800_0000;
export const FAN_RENAME = 0x1000_0000;
export const FAN_ONDIR = 0x4000_0000;

export const FAN_PERMISSION_EVENTS = FAN_OPEN_PERM | FAN_ACCESS_PERM | FAN_OPEN_EXEC_PERM | FAN_PRE_ACCESS;
/** Events that exist only in a FID report mode (EINVAL in fd mode). */
export const FAN_DIRENT_EVENTS =
  FAN_ATTRIB | FAN_MOVED_FROM | FAN_MOVED_TO | FAN_CREATE | FAN_DELETE | FAN_DELETE_SELF | FAN_MOVE_SELF | FAN_RENAME;
/** Events the kernel reports only to groups with file handles (FAN_REPORT_FID). */
export const FAN_FID_ONLY_EVENTS = FAN_DIRENT_EVENTS | FAN_FS_ERROR;

// struct fanotify_response.response
export const FAN_ALLOW = 0x01;
export const FAN_DENY = 0x02;
export const FAN_AUDIT = 0x10;
export const FAN_INFO = 0x20;
// struct fanotify_response_info_audit_rule { struct fanotify_response_info_header
//   { __u8 type; __u8 pad; __u16 len; }; __u32 rule_number, subj_trust, obj_trust; }
export const FAN_RESPONSE_INFO_AUDIT_RULE = 1;
export const AUDIT_RULE_INFO_LEN = 16;
/** Trust values the audit record carries: 2 = unknown. */
export const FAN_AUDIT_TRUST_UNKNOWN = 2;
export const FAN_NOFD = -1;
export const FAN_NOPIDFD = FAN_NOFD;
export const FAN_EPIDFD = -2;

export const FANOTIFY_METADATA_VERSION = 3;

// struct fanotify_event_metadata { __u32 event_len; __u8 vers; __u8 reserved;
//   __u16 metadata_len; __aligned_u64 mask; __s32 fd; __s32 pid; }
export const META_OFF_EVENT_LEN = 0;
export const META_OFF_VERS = 4;
export const META_OFF_METADATA_LEN = 6;
export const META_OFF_MASK = 8;
export const META_OFF_FD = 16;
export const META_OFF_PID = 20;
export const FAN_EVENT_METADATA_LEN = 24;

// struct fanotify_event_info_header { __u8 info_type; __u8 pad; __u16 len; }
export const INFO_HDR_OFF_TYPE = 0;
export const INFO_HDR_OFF_LEN = 2;
export const INFO_HDR_LEN = 4;

export const FAN_EVENT_INFO_TYPE_FID = 1;
export const FAN_EVENT_INFO_TYPE_DFID_NAME = 2;
export const FAN_EVENT_INFO_TYPE_DFID = 3;
export const FAN_EVENT_INFO_TYPE_PIDFD = 4;
export const FAN_EVENT_INFO_TYPE_ERROR = 5;
export const FAN_EVENT_INFO_TYPE_RANGE = 6;
export const FAN_EVENT_INFO_TYPE_MNT = 7;
export const FAN_EVENT_INFO_TYPE_OLD_DFID_NAME = 10;
export const FAN_EVENT_INFO_TYPE_NEW_DFID_NAME = 12;

// struct fanotify_event_info_fid { hdr; __kernel_fsid_t fsid (2 x s32);
//   unsigned char handle[]; } where handle is struct file_handle
//   { __u32 handle_bytes; int handle_type; unsigned char f_handle[]; }
export const FID_OFF_FSID = 4;
export const FID_FSID_LEN = 8;
export const FID_OFF_HANDLE = 12;
export const FILE_HANDLE_HEADER_LEN = 8;

// struct fanotify_event_info_pidfd { hdr; __s32 pidfd; }
export const PIDFD_INFO_LEN = 8;
// struct fanotify_event_info_error { hdr; __s32 error; __u32 error_count; }
export const ERROR_INFO_LEN = 12;
// struct fanotify_event_info_range { hdr; __u32 pad; __u64 offset; __u64 count; }
export const RANGE_INFO_LEN = 24;
// struct fanotify_event_info_mnt { hdr; __u64 mnt_id; }
export const MNT_INFO_LEN = 16;

// struct fanotify_response { __s32 fd; __u32 response; }
export const FAN_RESPONSE_LEN = 8;
