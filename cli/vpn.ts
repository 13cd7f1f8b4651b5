import type { Command } from './io.ts'

export const command: Command = {
  summary: 'vpn',
  run: async (_argv, io) => {
    io.stderr('kairos-p2p vpn: not available in this build yet\n')
    return 1
  }
}
