/**
 * A one-line progress bar on a terminal; on anything else (a pipe, a CI log) one line per step, so
 * the progress is still there to read afterwards.
 */
export interface Progress {
  step(detail: string): void;
  done(): void;
}

const WIDTH = 30;

export function createProgress(total: number, out: NodeJS.WriteStream = process.stderr): Progress {
  let count = 0;
  const line = (detail: string) => {
    const filled = total === 0 ? WIDTH : Math.round((count / total) * WIDTH);
    const percent = total === 0 ? 100 : Math.floor((count / total) * 100);
    return `[${"#".repeat(filled)}${".".repeat(WIDTH - filled)}] ${String(percent).padStart(3)}% ${count}/${total} ${detail}`;
  };
  return {
    step(detail) {
      count++;
      if (out.isTTY) out.write(`\r\x1b[2K${line(detail).slice(0, (out.columns ?? 120) - 1)}`);
      else out.write(`${line(detail)}\n`);
    },
    done() {
      if (out.isTTY) out.write("\n");
    },
  };
}
