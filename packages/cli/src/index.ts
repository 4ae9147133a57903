export { buildProgram, VERSION } from './program.js';
export { EXAMPLES } from './examples.js';
export { runDemo } from './commands/demo.js';
export { COMMAND_MODULES, programFor } from './program-lazy.js';
