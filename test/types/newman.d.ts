/** The part of newman's library API the Postman test uses (newman ships no types). */
declare module 'newman' {
  export interface RunOptions {
    collection: object;
    /** Runs only this folder's requests, in order. */
    folder?: string;
    /** Environment variables, which win over the collection's own. */
    envVar?: { key: string; value: string }[];
    reporters?: string[];
    timeoutRequest?: number;
  }
  export interface Execution {
    item: { name: string };
    /** The request as sent, variables filled in. */
    request: { headers: { get(name: string): string | undefined } };
    response?: { code: number };
    requestError?: Error;
    assertions?: { assertion: string; skipped?: boolean; error?: { message: string } }[];
  }
  export interface RunSummary {
    run: {
      stats: Record<'requests' | 'assertions' | 'testScripts' | 'prerequestScripts', { total: number; failed: number }>;
      failures: { error: { message: string }; source?: { name?: string } }[];
      executions: Execution[];
    };
  }
  export function run(options: RunOptions, callback: (err: Error | null, summary: RunSummary) => void): unknown;
  const newman: { run: typeof run };
  export default newman;
}
