export { buildProgram, VERSION } from './program.js';
export { runDemo } from './commands/demo.js';
