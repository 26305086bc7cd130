/*
 * NAME
 *   ctl/metrics - tlsmgr-ctl metrics: the running daemon's Prometheus metrics
 * SYNOPSIS
 *   tlsmgr-ctl [-c config_dir] metrics
 * DESCRIPTION
 *   Asks the daemon for {"cmd":"metrics"} (daemon/control-answers.ts) and prints the reply's
 *   text as it is: the Prometheus text exposition (format 0.0.4) of every postfix_tlsmgr_*
 *   metric (metrics/registry.ts), the same text GET /metrics serves when
 *   tlsmgr_metrics_listen is set. For node_exporter's textfile collector, say, or a look
 *   by hand: `tlsmgr-ctl metrics | grep cache_lookups`.
 * DIAGNOSTICS
 *   The daemon cannot be reached or refuses: "tlsmgr-ctl: fatal: ..." and exit status 1
 *   (ctl/control.ts); a reply without its text: "tlsmgr-ctl: fatal: bad reply from tlsmgr:
 *   no metrics text", exit status 1.
 * SEE ALSO
 *   daemon/control-answers.ts, metrics/registry.ts, daemon/metrics-http.ts
 */

import { CtlError, type CtlCommand } from './command.js';
import { askDaemon, controlPathFor } from './control.js';

export const metricsCommand: CtlCommand = {
  name: 'metrics',
  synopsis: 'metrics',
  summary: 'the running tlsmgr\'s Prometheus metrics (text exposition)',
  args: {},
  async run(_args, ctx) {
    const reply = await askDaemon(controlPathFor(ctx.configDir), { cmd: 'metrics' });
    if (typeof reply.text !== 'string') throw new CtlError('bad reply from tlsmgr: no metrics text');
    // The text ends with a newline; io.out() prints one line and adds its newline.
    const text = reply.text.endsWith('\n') ? reply.text.slice(0, -1) : reply.text;
    for (const line of text.split('\n')) ctx.io.out(line);
    return 0;
  },
};
