import type { Command } from './io.ts'

export const command: Command = {
  summary: 'agent',
  run: async (_argv, io) => {
    io.stderr('kairos-p2p agent: not available in this build yet\n')
    return 1
  }
}
