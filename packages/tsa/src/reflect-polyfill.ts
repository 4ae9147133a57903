/**
 * @peculiar/x509 uses tsyringe, which throws at load time unless a Reflect metadata polyfill is installed.
 * Every module that imports @peculiar/x509 imports this file first (ESM evaluates imports in order).
 */
import 'reflect-metadata';
