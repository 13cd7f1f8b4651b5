import type { Command } from './io.ts'

export const command: Command = {
  summary: 'status',
  run: async (_argv, io) => {
    io.stderr('kairos-p2p status: not available in this build yet\n')
    return 1
  }
}
