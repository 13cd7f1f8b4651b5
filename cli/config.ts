import type { Command } from './io.ts'

export const command: Command = {
  summary: 'config',
  run: async (_argv, io) => {
    io.stderr('kairos-p2p config: not available in this build yet\n')
    return 1
  }
}
