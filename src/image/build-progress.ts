/** Progress of `kiver image build`: phases, and the reporter that brackets each one. */

export type BuildPhase =
  | 'resolve'
  | 'cached'
  | 'wait'
  | 'download'
  | 'unpack'
  | 'bootstrap'
  | 'base'
  | 'install'
  | 'configure'
  | 'tar'
  | 'import'
  | 'done';

export interface BuildProgress {
  /** Recipe name (a base image built on the way reports its own name). */
  image: string;
  phase: BuildPhase;
  /** `start` and `end` bracket a phase; `note` is a one-off message. */
  state: 'start' | 'end' | 'note';
  message: string;
  /** Duration of the phase, on `end`. */
  phaseMs?: number;
  /** Time since buildImage was called. */
  totalMs: number;
}

export class Reporter {
  constructor(
    private readonly t0: number,
    private readonly cb?: (p: BuildProgress) => void,
  ) {}
  note(image: string, phase: BuildPhase, message: string): void {
    this.cb?.({ image, phase, state: 'note', message, totalMs: Date.now() - this.t0 });
  }
  async step<T>(image: string, phase: BuildPhase, message: string, fn: () => Promise<T>, done?: (r: T) => string): Promise<T> {
    const start = Date.now();
    this.cb?.({ image, phase, state: 'start', message, totalMs: start - this.t0 });
    const r = await fn();
    const end = Date.now();
    this.cb?.({ image, phase, state: 'end', message: done ? done(r) : message, phaseMs: end - start, totalMs: end - this.t0 });
    return r;
  }
}
