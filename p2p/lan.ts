/**
 * Discovery on the LAN: mDNS under the token's tag, and during a token rotation's grace
 * also under the previous generation's (docs/decisions.md, LIFE-6), so a member back
 * with only the previous token finds the site. A lost member sends the current tag's
 * mDNS back to its fast phase (P2P-29).
 */
import type { Logger } from '../util/log.ts'
import { errorMessage } from '../util/errors.ts'
import { createMdnsDiscovery, type MdnsDiscovery, type MdnsDiscoveryInit } from './mdns.ts'

/** What LAN discovery is given: mDNS's options but the tag, and the node's events. */
export interface LanDiscoveryInit extends Omit<MdnsDiscoveryInit, 'serviceTag'> {
  /** The current generation's service tag first, then the previous one's while it is honoured. */
  serviceTags: readonly string[]
  /** The node's events: `member:leave` nudges mDNS. */
  events: EventTarget
  logger: Logger
}

/** Running LAN discovery. */
export interface LanDiscovery {
  /** Stops every tag's mDNS and the nudging. Safe to call twice. */
  stop(): Promise<void>
}

/** Starts mDNS under each tag; the first one is nudged when a member leaves. */
export async function startLanDiscovery (init: LanDiscoveryInit): Promise<LanDiscovery> {
  const { serviceTags, events, logger, ...options } = init
  const started: MdnsDiscovery[] = []
  for (const serviceTag of serviceTags) {
    const lan = createMdnsDiscovery({ ...options, serviceTag, logger })
    await lan.start()
    started.push(lan)
  }
  // Members lost: look for them at once (the fast phase), not after a backed-off gap.
  const lost = (): void => { started[0]?.nudge() }
  events.addEventListener('member:leave', lost)
  return {
    async stop () {
      events.removeEventListener('member:leave', lost)
      for (const lan of started.splice(0)) await lan.stop().catch((err: unknown) => { logger.warn('stopping mDNS failed', { error: errorMessage(err) }) })
    }
  }
}
