// Main thread (overwatch), per bus message. overwatch.bus: subscribes to every
// agent subject on NATS and feeds each message to the same OverwatchChannel
// as the UDP/TCP listeners (receiver.ts in src/gossip/): the same opening,
// signature, pin, token and replay checks, the same handlers. A message that
// asks for a reply (the agent's ack subject) gets the sealed ack the TCP path
// would write, once the pin is stored. Not a queue group: every overwatch
// hears every agent.
//
//   NATS <prefix>.agents.> ─► OverwatchChannel.receive(bytes, bus) ─► handlers
//                                   └─ ack ─► sealed ─► msg.reply (<prefix>.acks.<agent id>)

import type { Subscription } from '@nats-io/transport-node';
import type { BusConfig } from '../config/types.ts';
import type { OverwatchChannel } from '../gossip/channel.ts';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../gossip/receiver.ts';
import { agentsWildcard, BusLink, connectionOptions, type BusLinkEvent } from './nats.ts';

export interface BusReceiverOptions {
  readonly bus: BusConfig;
  readonly channel: OverwatchChannel;
  /** Client name the NATS server shows (monitoring). */
  readonly name: string;
  readonly maxMessageBytes?: number;
  readonly onEvent?: (event: BusLinkEvent) => void;
  /** A channel handler threw (a bug in the integration, not bad input): the message counts as accepted. */
  readonly onHandlerError?: (error: unknown) => void;
}

/** Bus counters (accepted messages by type and drops by reason are the channel's, whatever the transport). */
export interface BusReceiverCounters {
  /** Messages taken from NATS: accepted + refused + handlerErrors. */
  readonly messages: number;
  /** Messages the channel accepted. */
  readonly accepted: number;
  /** Messages the channel dropped (too large included). */
  readonly refused: number;
  readonly acksSent: number;
  /** Acks not sent because NATS refused the message's reply subject. */
  readonly badReplies: number;
  readonly tooLarge: number;
  readonly handlerErrors: number;
  readonly connected: boolean;
  /** Connections made again after a loss. */
  readonly reconnects: number;
}

/** The overwatch's NATS subscription for agent messages. Create, then close() at the end. */
export class BusReceiver {
  readonly #channel: OverwatchChannel;
  readonly #link: BusLink;
  readonly #maxMessageBytes: number;
  readonly #onHandlerError: (error: unknown) => void;
  readonly #counts = { messages: 0, accepted: 0, refused: 0, acksSent: 0, badReplies: 0, tooLarge: 0, handlerErrors: 0, reconnects: 0 };
  #subscription: Subscription | null = null;
  #closed = false;

  constructor(options: BusReceiverOptions) {
    this.#channel = options.channel;
    this.#maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.#onHandlerError = options.onHandlerError ?? (() => {});
    const subject = agentsWildcard(options.bus.subjectPrefix);
    this.#link = new BusLink(connectionOptions(options.bus, 'overwatch.bus', options.name), (e) => {
      if (e.kind === 'connected' && !e.first) this.#counts.reconnects++;
      options.onEvent?.(e);
    });
    // The client re-subscribes by itself after a reconnect.
    void this.#link.ready.then((nc) => {
      if (this.#closed) return;
      this.#subscription = nc.subscribe(subject, {
        callback: (err, msg) => {
          if (err !== null) return;
          // No reply subject arrives as "" (publish without one).
          this.#onMessage(msg.data, msg.subject, msg.reply === undefined || msg.reply === '' ? null : msg.reply);
        },
      });
    }, () => {});
  }

  /** Resolves once the first connection and the subscription are made (tests, logs). */
  async ready(): Promise<void> {
    const nc = await this.#link.ready;
    await nc.flush();
  }

  counters(): BusReceiverCounters {
    return { ...this.#counts, connected: this.#link.connection !== null };
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#subscription?.unsubscribe();
    await this.#link.close();
  }

  #onMessage(data: Uint8Array, subject: string, reply: string | null): void {
    this.#counts.messages++;
    const source = { transport: 'bus', remote: subject } as const;
    if (data.length > this.#maxMessageBytes) {
      this.#counts.tooLarge++;
      this.#counts.refused++;
      this.#channel.countDrop('too_large', `a bus message above ${this.#maxMessageBytes} bytes`, source);
      return;
    }
    let result: ReturnType<OverwatchChannel['receive']>;
    try {
      result = this.#channel.receive(data, source);
    } catch (err) {
      this.#counts.handlerErrors++;
      this.#onHandlerError(err);
      return;
    }
    if (result.ok) this.#counts.accepted++;
    else this.#counts.refused++;
    // Bytes we could not open get no answer, as on TCP; a reply subject outside the bus prefix is the agent's to choose (it is only a subject).
    if (reply === null || result.ack === null) return;
    const ack = result.ack;
    const keyId = result.keyId;
    const persisted = result.ok ? result.persisted : Promise.resolve();
    void persisted.then(() => {
      const nc = this.#link.connection;
      if (nc === null || this.#closed) return;
      try {
        nc.publish(reply, this.#channel.sealAck(ack, keyId));
        this.#counts.acksSent++;
      } catch {
        // A reply subject NATS refuses (a wildcard, white space): whoever sent it gets no ack; never a crash.
        this.#counts.badReplies++;
      }
    }, () => {});
  }
}
