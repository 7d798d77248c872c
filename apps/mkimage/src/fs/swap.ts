import { textMax, uuidCheck } from '../options.js';
import { run } from '../run.js';
import { type BuildContext, type FilesystemBuilder, stableUuid } from './builder.js';

/** Linux swap through mkswap in a scratch file (mkswap has no offset option). */
export const swapBuilder: FilesystemBuilder = {
  names: ['swap'],
  options: { label: textMax(16, 'label'), uuid: uuidCheck },
  content: 'none',
  partitionType: { mbr: '82', gpt: 'swap' },
  tools: { mkswap: 'util-linux' },
  inPlace: false,
  async build(ctx: BuildContext) {
    const uuid = ctx.fs.options.uuid ?? stableUuid(ctx.id, 'swap-uuid');
    const args = ['-U', uuid];
    if (ctx.fs.options.label) args.push('-L', ctx.fs.options.label);
    await run('mkswap', [...args, ctx.target]);
    return { ...ctx.fs.options, uuid };
  },
};

/** Raw partition: only the prefill (or zeros). */
export const rawBuilder: FilesystemBuilder = {
  names: ['raw'],
  options: {},
  content: 'prefill',
  partitionType: { mbr: 'da', gpt: 'linux' },
  tools: {},
  inPlace: true,
  async build(ctx: BuildContext) {
    return { ...ctx.fs.options };
  },
};
