// Cold path. Prints GET /api/v1/explain (src/overwatch/explain.ts builds it):
// the query and its result, the answer and how answers are drawn, the policy,
// every candidate server with whether the next answer may carry it and why
// not, weighted chances, and the explanation's notes.

// Type-only: the CLI reads the JSON the API serves, whose shape explain.ts owns; nothing of routing runs here.
import type { ExplainCandidate, Explanation } from '../../overwatch/explain.ts';
import { formatLatency } from './format.ts';
import { formatFields, formatTable } from './table.ts';

const NONE = '-';

function cell(v: string | number | null): string {
  return v === null || v === '' ? NONE : String(v);
}

function pct(p: number | null): string {
  return p === null ? NONE : `${(p * 100).toFixed(1)}%`;
}

const SELECTION: Record<NonNullable<Explanation['selection']>, string> = {
  fixed: 'the next answer',
  rotation: 'the pool each answer rotates through',
  weighted_random: 'the pool each answer is drawn from by weight',
};

const SOURCE: Record<NonNullable<Explanation['source']>, string> = {
  domain: 'domain',
  nameserver: "a name server's address (static)",
  zone: 'zone apex data (SOA, NS)',
  static: 'static records (dns.zones[].records)',
  delegation: 'a delegation (referral to the child zone\'s name servers)',
};

export function formatExplain(e: Explanation): string {
  const fields: [string, string][] = [];
  fields.push(['Query', `${e.name} ${e.type}${e.client === null ? '' : ` from ${e.client}`}`]);
  fields.push(['Result', `${e.rcode}${e.aa ? ', authoritative' : ', not authoritative'}`]);
  if (e.zone !== null) fields.push(['Zone', e.zone]);
  if (e.source !== null) fields.push(['From', e.source === 'domain' && e.domain !== null ? `domain ${e.domain}` : SOURCE[e.source]]);
  if (e.policy !== null) {
    const parts: string[] = [e.policy];
    if (e.max_answers !== null) parts.push(`max_answers ${e.max_answers}`);
    if (e.when_all_down !== null) parts.push(`when_all_down ${e.when_all_down}`);
    fields.push(['Policy', parts.join(', ')]);
  }
  if (e.geo !== null && e.geo !== undefined) {
    const g = e.geo;
    const how = g.match_type === 'custom_mapping' ? `custom mapping ${g.matched_cidr}` : g.match_type === 'geoip' ? `GeoIP ${[g.country, g.continent].filter((x) => x !== null).join('/')}` : g.match_type === 'default' ? 'default_region' : 'nothing';
    fields.push(['Client region', `${g.region ?? 'none'} (by ${how}${g.scope_prefix_length > 0 ? `, ECS scope /${g.scope_prefix_length}` : ''})`]);
    if (g.fallback !== null) fields.push(['Answered from', `${g.answered_region ?? 'none'} (${g.fallback.replaceAll('_', ' ')})`]);
  }
  if (e.answers.length > 0) {
    const how = e.selection === null ? '' : ` (${SELECTION[e.selection]}${e.selection !== 'fixed' ? `, ${e.answer_size} per answer` : ''})`;
    fields.push(['Answer', `${e.answers.join(' ')}${how}`]);
  } else if (e.rcode === 'NOERROR' || e.rcode === 'NXDOMAIN') {
    fields.push(['Answer', 'none']);
  }
  if (e.ttl !== null) fields.push(['TTL', `${e.ttl} s${e.answers.length === 0 ? ' (negative caching, from the SOA)' : ''}`]);
  // Absent from servers before explain measured the answer.
  if (e.wire !== null && e.wire !== undefined) fields.push(['Size', sizeLine(e.wire)]);
  if (e.all_down !== null) {
    fields.push(['All down', `no server is eligible: when_all_down ${e.all_down.mode} ${e.all_down.answered ? 'answers' : 'gives SERVFAIL'}`]);
  }
  if (e.fallback.length > 0) fields.push(['Fallback', e.fallback.join(' ')]);
  let out = formatFields(fields);

  if (e.additional.length > 0) out += `\nAdditional:\n${e.additional.map((r) => `  ${r}\n`).join('')}`;
  if (e.candidates.length > 0) {
    out += '\n' + formatTable(['ADDRESS', 'PORT', 'REGION', 'PRIORITY', 'WEIGHT', 'STATUS', 'CHECKS', 'AUTHORITY', 'LATENCY', 'ELIGIBLE', 'WHY'], e.candidates.map(candidateRow));
  }
  if (e.probabilities !== null && e.probabilities.length > 0) {
    out += '\nWeighted chances:\n';
    out += formatTable(['ADDRESS', 'WEIGHT', 'LEADS', 'IN-ANSWER'], e.probabilities.map((p) => [p.address, String(p.weight), pct(p.first), pct(p.in_answer)]), '  ');
  }
  if (e.cycle !== null && e.cycle.length > 1) {
    out += '\nRotation (each DNS worker keeps its own place in it):\n';
    out += e.cycle.map((answer, i) => `  ${i + 1}. ${answer.join(' ')}\n`).join('');
  }
  if (e.notes.length > 0) out += `\nNotes:\n${e.notes.map((n) => `  - ${n}\n`).join('')}`;
  return out;
}

/** The response's size, with and without EDNS, and which UDP clients get it truncated (TC=1, a retry over TCP). */
function sizeLine(w: NonNullable<Explanation['wire']>): string {
  const size = `${w.bytes} bytes (${w.bytes_edns} with EDNS)`;
  if (w.truncated_at_1232) return `${size}: truncated over UDP even for a client offering 1232 bytes; clients retry over TCP`;
  if (w.truncated_without_edns) return `${size}: truncated over UDP for a client without EDNS (512 bytes), which retries over TCP; fits 1232`;
  return `${size}: fits UDP without EDNS (512 bytes)`;
}

function candidateRow(c: ExplainCandidate): string[] {
  return [
    c.address,
    cell(c.port),
    cell(c.region),
    cell(c.priority),
    cell(c.weight),
    c.status,
    cell(c.check_status),
    cell(c.authority),
    formatLatency(c.latency_ms),
    c.eligible ? 'yes' : 'no',
    cell(c.eligible ? c.detail : c.reason),
  ];
}
