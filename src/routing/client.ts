// Worker, hot path. Who asked: the client address a query's routing may
// depend on. The transport records the packet's source for every query (one
// store of the string node:dgram / node:net already made, no parsing); the
// EDNS Client Subnet option stays where the parser put it (ParsedQuery's ecs*
// fields, the address bytes inside the request). A policy that routes by
// client (geolocation, sticky) reads them; the others never look, so the
// client costs them two stores per query.

import type { ParsedQuery } from '../dns/parse.ts';

/** One per worker, overwritten for every query. Every field is set in the constructor so the shape never changes. */
export class ClientAddress {
  /** The packet's source address as the socket reported it ("192.0.2.1", "2001:db8::1"), "" when unknown. */
  sourceText = '';
  /** 4 or 6; 0 when unknown. */
  sourceFamily = 0;
  /** The query being answered: its ECS option (ecsFamily 0 = none; RFC 7871 §6) with the address bytes in `request`. */
  readonly query: ParsedQuery;
  /** The request the query was parsed from (holds the ECS address bytes at query.ecsAddrOff). */
  request: Uint8Array = EMPTY;

  constructor(query: ParsedQuery) {
    this.query = query;
  }

  /** Records the packet's source (per query, from the transport). */
  setSource(text: string, family: number): void {
    this.sourceText = text;
    this.sourceFamily = family;
  }
}

const EMPTY = new Uint8Array(0);
