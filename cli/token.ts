import type { Command } from './io.ts'

export const command: Command = {
  summary: 'token',
  run: async (_argv, io) => {
    io.stderr('kairos-p2p token: not available in this build yet\n')
    return 1
  }
}
