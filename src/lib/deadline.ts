/**
 * `work`, or `onTimeout()` thrown when it has not settled within `ms`. `work` itself goes on (there
 * is no cancelling a promise); its late outcome is ignored.
 */
export function deadline<T>(work: PromiseLike<T>, ms: number, onTimeout: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(onTimeout()), ms);
    work.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}
