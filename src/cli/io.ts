// Where fanctl writes: results on stdout, everything about the session
// (watching, lost, errors) on stderr, so a pipe carries only results.
export interface Io {
  /** One result line (no newline). */
  out(line: string): void;
  /** One line about the session (no newline, no "fanctl: " prefix). */
  note(line: string): void;
}

export const stdio: Io = {
  out: (line) => process.stdout.write(line + '\n'),
  note: (line) => process.stderr.write(`fanctl: ${line}\n`),
};
