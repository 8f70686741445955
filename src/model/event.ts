/** Stored at /kiver/events/<object>/<reason>: repeats of the same cause bump count. */
export interface KiverEvent {
  /** e.g. "service/redis", "replica/redis/0", "node/n1". */
  object: string;
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
  count: number;
  firstAt: string;
  lastAt: string;
}
