/**
 * Wraps an async task so that calls made while a run is in flight wait for that run instead of
 * starting another. For the refresh: however many requests find the access token stale at once,
 * one refresh goes out, so a rotated refresh token is never presented twice by one client.
 */
export function singleFlight<T>(task: () => Promise<T>): () => Promise<T> {
  let running: Promise<T> | undefined;
  return () =>
    (running ??= task().finally(() => {
      running = undefined;
    }));
}
