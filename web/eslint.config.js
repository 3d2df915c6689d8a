// ESLint (flat config): the recommended rules of ESLint, typescript-eslint, React and React
// Hooks over the client, its unit tests, the browser tests and the scripts.

import js from '@eslint/js';
import react from 'eslint-plugin-react';
import reactHooks from 'eslint-plugin-react-hooks';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  // Built files, and the types generated from the OpenAPI document and the frame schema
  // (`npm run gen:types`, before every lint; not committed).
  { ignores: ['dist/', 'e2e-artifacts/', 'src/lib/*.gen.ts'] },
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    files: ['src/**/*.{ts,tsx}'],
    ...react.configs.flat.recommended,
    languageOptions: { ...react.configs.flat.recommended.languageOptions, globals: globals.browser },
    settings: { react: { version: 'detect' } },
  },
  { files: ['src/**/*.{ts,tsx}'], ...react.configs.flat['jsx-runtime'] },
  { files: ['src/**/*.{ts,tsx}'], ...reactHooks.configs.flat.recommended },
  // The browser tests run in node, and hand functions to the page that run in the browser.
  { files: ['e2e/**/*.mjs'], languageOptions: { globals: { ...globals.node, ...globals.browser } } },
  { files: ['scripts/**/*.mjs', '*.config.{js,ts}'], languageOptions: { globals: globals.node } },
  // call.ts keeps `catch (e)` bindings it does not read; until that file drops them, caught
  // errors are not checked there (every other rule is).
  { files: ['src/lib/call.ts'], rules: { '@typescript-eslint/no-unused-vars': ['error', { caughtErrors: 'none' }] } },
);
