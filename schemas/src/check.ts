/**
 * Compile-time check that a hand-refined contract type stays within the type generated from its schema:
 * `Assignable<Refined, Generated>` only compiles when every Refined value is a Generated value.
 */
export type Assignable<A extends B, B> = [A, B];
