// Cold path. The `opengslb-cli dnssec …` commands: key status, the DS records
// to upload at the parent, and the key rollover steps. Each asks the admin
// API (src/api/dnssec-routes.ts) and prints a table, or the JSON with --json.

import type { DnssecKeyView, DsRecordView, RolloverView } from '../../dnssec/keyring.ts';
import type { Shape } from './client.ts';
import { type Command, print, str } from './command.ts';
import { formatTable } from './table.ts';
import { UsageError } from './usage-error.ts';

/** GET /api/v1/dnssec/status. */
interface StatusResponse {
  readonly enabled: boolean;
  readonly algorithm: string;
  readonly signature_validity_seconds: number;
  readonly keys: readonly DnssecKeyView[];
  readonly key_sync?: KeySyncView;
}

/** The key_sync part of the status (present once key sync exists on the server). */
interface KeySyncView {
  readonly enabled: boolean;
  readonly in_sync: boolean;
  readonly peers: readonly { readonly url: string; readonly ok: boolean; readonly last_success: string | null; readonly last_error: string | null }[];
}

/** GET /api/v1/dnssec/ds. */
interface DsResponse {
  readonly ds: readonly DsRecordView[];
}


/** Seconds as the largest whole unit: "3d", "5h", "12m", "40s". */
function age(seconds: number): string {
  if (seconds >= 86400) return `${Math.floor(seconds / 86400)}d`;
  if (seconds >= 3600) return `${Math.floor(seconds / 3600)}h`;
  if (seconds >= 60) return `${Math.floor(seconds / 60)}m`;
  return `${seconds}s`;
}

/**
 * A key's STATE cell: its state; "not in DNSKEY yet" for a new algorithm's
 * key that signs before it is published (a server without in_dnskey_rrset
 * says nothing); "(signing)" when it signs the answers (a withdrawn key does
 * until it retires).
 */
function stateText(k: DnssecKeyView): string {
  const unpublished = k.state === 'published' && k.in_dnskey_rrset === false ? ', not in DNSKEY yet' : '';
  return k.state + unpublished + (k.signing ? ' (signing)' : '');
}

/** `dnssec status`: one line per key, then key sync when it is configured. */
export function formatDnssecStatus(res: StatusResponse, zone: string | undefined): string {
  if (!res.enabled) return 'DNSSEC is off (overwatch.dnssec.enabled: false): answers are not signed.\n';
  const keys = zone === undefined ? res.keys : res.keys.filter((k) => k.zone === zone);
  let out = `DNSSEC on: new keys ${res.algorithm}, signatures valid ${age(res.signature_validity_seconds)}.\n`;
  if (keys.length === 0) return out + (zone === undefined ? 'No keys.\n' : `No keys for zone ${zone}.\n`);
  const rows = keys.map((k) => [k.zone, String(k.key_tag), k.algorithm, String(k.flags), stateText(k), k.created, age(k.age_seconds)]);
  out += formatTable(['ZONE', 'KEY TAG', 'ALGORITHM', 'FLAGS', 'STATE', 'CREATED', 'AGE'], rows);
  const sync = res.key_sync;
  if (sync !== undefined && sync.enabled) {
    out += `Key sync: ${sync.in_sync ? 'in sync with every peer' : 'NOT in sync: this node keeps signing with the keys it has'}\n`;
    out += formatTable(['PEER', 'OK', 'LAST SUCCESS', 'LAST ERROR'], sync.peers.map((p) => [p.url, p.ok ? 'yes' : 'no', p.last_success ?? '-', p.last_error ?? '-']), '  ');
  }
  return out;
}

/** `dnssec ds`: the records, one per line, ready to paste. */
export function formatDs(res: DsResponse): string {
  if (res.ds.length === 0) return 'No DS records: no zone is signed.\n';
  return res.ds.map((d) => d.record).join('\n') + '\n';
}

/** Top-level fields each answer must carry (see client.ts Shape). */
const SHAPES = {
  status: { enabled: 'boolean', keys: 'array' },
  ds: { ds: 'array' },
  rollover: { zone: 'string', phase: 'string' },
} as const satisfies Record<string, Shape>;

const dnssecStatus: Command = {
  name: 'dnssec status',
  synopsis: '[--zone ZONE]',
  summary: 'DNSSEC keys: zone, key tag, algorithm, state, age (and key sync with the other overwatches)',
  flags: ['--zone ZONE       only this zone\'s keys'],
  options: { zone: { type: 'string' } },
  args: [0, 0],
  async run(ctx, values) {
    const res = await ctx.client.get('/api/v1/dnssec/status', SHAPES.status);
    const zone = str(values, 'zone')?.toLowerCase().replace(/\.$/, '');
    print(ctx, res.body as StatusResponse, (b) => formatDnssecStatus(b, zone));
  },
};

const dnssecDs: Command = {
  name: 'dnssec ds',
  synopsis: '[--zone ZONE]',
  summary: 'the DS records (SHA-256) to publish at the parent zone, ready to paste',
  flags: ['--zone ZONE       only this zone (default: every signed zone)'],
  options: { zone: { type: 'string' } },
  args: [0, 0],
  async run(ctx, values) {
    const res = await ctx.client.get('/api/v1/dnssec/ds', SHAPES.ds, { zone: str(values, 'zone') });
    print(ctx, res.body as DsResponse, formatDs);
  },
};

/** `dnssec rollover …`: the phase, the keys and the next step. */
export function formatRollover(v: RolloverView, action: string): string {
  const lines: string[] = [];
  // A key of a new algorithm signs before it joins the DNSKEY RRset, and the old one keeps signing after finish (withdrawing).
  const unpublished = v.publish_at !== undefined && v.publish_at !== null;
  if (action === 'start') lines.push(`Rollover of ${v.zone} started: key ${v.new_key} ${unpublished ? `signs beside the old key and joins the DNSKEY RRset at ${v.publish_at}` : 'is published'}.`);
  if (action === 'finish') {
    lines.push(v.phase === 'withdrawing'
      ? `Rollover of ${v.zone} finished: key ${v.old_keys.join(', ')} left the DNSKEY RRset and signs beside key ${v.signing_key} until ${v.switch_at}, then retires.`
      : `Rollover of ${v.zone} finished: key ${v.signing_key} signs alone.`);
  }
  lines.push(`Zone:         ${v.zone}`);
  lines.push(`Phase:        ${v.phase}`);
  lines.push(`Signing key:  ${v.signing_key}`);
  if (v.new_key !== null) lines.push(`New key:      ${v.new_key}`);
  if (v.old_keys.length > 0) lines.push(`Old keys:     ${v.old_keys.join(', ')}`);
  if (unpublished) lines.push(`Publish at:   ${v.publish_at}`);
  if (v.switch_at !== null) lines.push(`${v.phase === 'withdrawing' ? 'Retires at:' : 'Switch at: '}   ${v.switch_at}`);
  lines.push(`Next step:    ${v.next_step}`);
  return lines.join('\n') + '\n';
}

const ROLLOVER_ACTIONS = ['start', 'status', 'finish'] as const;

const dnssecRollover: Command = {
  name: 'dnssec rollover',
  synopsis: 'start|status|finish --zone ZONE',
  summary: 'replace a zone\'s key without a validation gap: publish a new key, let it sign after the DNSKEY TTL, retire the old one',
  flags: [
    'start             publish a new key beside the current one; it signs after the DNSKEY TTL (1 h + 5 min)',
    'status            the phase, the keys, when the new key signs, and the next step',
    'finish            retire the old key; run it once the new DS is at the parent and the old DS\'s TTL has passed',
    '--zone ZONE       the zone (required)',
  ],
  options: { zone: { type: 'string' } },
  args: [1, 1],
  async run(ctx, values, args) {
    const action = args[0];
    if (!(ROLLOVER_ACTIONS as readonly string[]).includes(action)) throw new UsageError(`"${action}" is not a rollover step, expected start, status or finish`);
    const zone = str(values, 'zone');
    if (zone === undefined || zone.trim() === '') throw new UsageError('--zone ZONE is required');
    const res = action === 'status'
      ? await ctx.client.get('/api/v1/dnssec/rollover', SHAPES.rollover, { zone })
      : await ctx.client.post(`/api/v1/dnssec/rollover/${action}`, { zone }, SHAPES.rollover);
    print(ctx, res.body as RolloverView, (b) => formatRollover(b, action));
  },
};

/** The dnssec commands, in the order the overview lists them. */
export const DNSSEC_COMMANDS: readonly Command[] = [dnssecStatus, dnssecDs, dnssecRollover];
