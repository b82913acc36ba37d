import { createServer, type Server } from 'node:http';
import type { RunReport } from '../reconcile/run.js';
import { agentVersion } from '../version.js';

/** What the daemon has done, as Prometheus text. Updated after every run; read-only otherwise. */
export class Metrics {
  #runs = 0;
  #last: RunReport | undefined;
  #lastAt = 0;
  #fetchErrors = 0;
  #pushes: Record<string, number> = { pushed: 0, unchanged: 0, failed: 0, skipped: 0 };

  constructor(private readonly host: string) {}

  record(report: RunReport): void {
    this.#runs += 1;
    this.#last = report;
    this.#lastAt = Date.now();
    if (report.outcome.sourceError) this.#fetchErrors += 1;
    if (report.published) this.#pushes[report.published] = (this.#pushes[report.published] ?? 0) + 1;
  }

  render(): string {
    const out: string[] = [];
    const metric = (name: string, help: string, type: string, rows: Array<[string, number]>) => {
      out.push(
        `# HELP ${name} ${help}`,
        `# TYPE ${name} ${type}`,
        ...rows.map(([labels, v]) => `${name}${labels} ${v}`),
      );
    };
    const o = this.#last?.outcome;
    metric('steward_info', 'Agent version and host.', 'gauge', [
      [`{version="${agentVersion}",host="${this.host}"}`, 1],
    ]);
    metric('steward_runs_total', 'Reconcile runs since start.', 'counter', [['', this.#runs]]);
    if (o) {
      metric('steward_last_run_timestamp_seconds', 'When the last run ended.', 'gauge', [
        ['', Math.floor(this.#lastAt / 1000)],
      ]);
      metric('steward_last_run_duration_seconds', 'How long the last run took.', 'gauge', [['', o.durationMs / 1000]]);
      metric('steward_last_run_success', '1 when the last run converged.', 'gauge', [
        ['', o.phase === 'Converged' ? 1 : 0],
      ]);
      metric(
        'steward_phase',
        'The host phase after the last run.',
        'gauge',
        ['Converged', 'Progressing', 'Degraded', 'Failed', 'Invalid', 'Offline', 'Suspended'].map((p) => [
          `{phase="${p}"}`,
          o.phase === p ? 1 : 0,
        ]),
      );
      const by: Record<string, number> = { Ready: 0, Failed: 0, Skipped: 0, Pruned: 0 };
      for (const r of o.results.values()) by[r.status] = (by[r.status] ?? 0) + 1;
      metric(
        'steward_resources',
        'Resources by status in the last run.',
        'gauge',
        Object.entries(by).map(([s, n]) => [`{status="${s}"}`, n]),
      );
    }
    metric('steward_fetch_errors_total', 'Runs whose Git fetch failed.', 'counter', [['', this.#fetchErrors]]);
    metric(
      'steward_status_pushes_total',
      'Status reports by outcome.',
      'counter',
      Object.entries(this.#pushes).map(([k, n]) => [`{result="${k}"}`, n]),
    );
    return out.join('\n') + '\n';
  }

  /** Serves GET /metrics on `listen` ("127.0.0.1:9464"). */
  serve(listen: string): Promise<Server> {
    const at = listen.lastIndexOf(':');
    const host = listen.slice(0, at).replace(/^\[|\]$/g, '');
    const port = Number(listen.slice(at + 1));
    const server = createServer((req, res) => {
      if (req.method === 'GET' && req.url === '/metrics') {
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
        res.end(this.render());
      } else {
        res.writeHead(404);
        res.end();
      }
    });
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve(server));
    });
  }
}
