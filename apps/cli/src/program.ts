import { Command } from 'commander';
import { registerBackup } from './commands/backup.js';
import { registerCheck } from './commands/check.js';
import { registerForget } from './commands/forget.js';
import { registerInfo } from './commands/info.js';
import { registerInspect } from './commands/inspect.js';
import { registerPrune } from './commands/prune.js';
import { registerRepo } from './commands/repo.js';
import { registerRestore } from './commands/restore.js';
import { registerSnapshots } from './commands/snapshots.js';
import { registerStats } from './commands/stats.js';
import { registerUsed } from './commands/used.js';
import { registerVerify } from './commands/verify.js';
import { VERSION } from './version.js';

export function createProgram(): Command {
  const program = new Command('diskube')
    .description('Back up VM disk images, storing only the blocks the guest filesystem uses.')
    .version(VERSION, '-V, --version')
    .exitOverride()
    .showHelpAfterError();
  registerInspect(program);
  registerUsed(program);
  registerBackup(program);
  registerRestore(program);
  registerVerify(program);
  registerCheck(program);
  registerInfo(program);
  registerRepo(program);
  registerSnapshots(program);
  registerForget(program);
  registerPrune(program);
  registerStats(program);
  return program;
}
