/**
 * A short wait that can be ended early: group commit gathering entries (log.ts) and tile publication gathering
 * batches (tiles/writer.ts) both wait "up to N ms, or until told there is no point waiting any longer".
 */
export class Linger {
  private end: (() => void) | undefined;

  /** Resolves after `ms`, or as soon as `wake()` is called. */
  wait(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => this.wake(), ms);
      this.end = () => {
        clearTimeout(timer);
        this.end = undefined;
        resolve();
      };
    });
  }

  /** Ends the current wait, if there is one. */
  wake(): void {
    this.end?.();
  }
}
