import { Command } from 'commander';
import { registerInspect } from './commands/inspect.js';
import { registerUsed } from './commands/used.js';
import { VERSION } from './version.js';

export function createProgram(): Command {
  const program = new Command('diskube')
    .description('Back up VM disk images, storing only the blocks the guest filesystem uses.')
    .version(VERSION, '-V, --version')
    .exitOverride()
    .showHelpAfterError();
  registerInspect(program);
  registerUsed(program);
  return program;
}
