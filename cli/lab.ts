import type { Command } from './io.ts'

export const command: Command = {
  summary: 'lab',
  run: async (_argv, io) => {
    io.stderr('kairos-p2p lab: not available in this build yet\n')
    return 1
  }
}
