/** Types of gen.mjs (a plain script, so `node schemas/gen.mjs` runs without a build). */
export declare const SCHEMA_DIR: string;
export declare const GENERATED_DIR: string;
export declare function generate(): Promise<{ file: string; content: string }[]>;
