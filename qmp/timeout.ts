// A promise that rejects with a caller-made error if `promise` has not settled in time.

export class TimeoutError extends Error {}

export function withTimeout<T>(promise: Promise<T>, timeout_ms: number, message: string, make: (message: string) => Error = (m) => new TimeoutError(m)): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(make(message)), timeout_ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
