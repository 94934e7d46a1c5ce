// Flags every kind of `tapsim run` shares (in-process, --vms, --netns).

export interface CommonRunFlags {
  latency: string;
  seed: number;
  duration?: number;
  sliceMax: number;
  inflightMax: number;
  trace: string;
  json: boolean;
  /** The grant-set schedule (RunConfig.parallel); default: one slice at a time. */
  parallel?: boolean;
}
