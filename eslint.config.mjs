// ESLint with typescript-eslint's recommended rules (syntax only: fast, and
// no type information needed). Errors fail `npm run lint` and so CI;
// warnings are shown and do not.
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

export default defineConfig(
  { ignores: ['dist/', 'node_modules/', 'src/api/gen/', 'bench/results/', 'bench/build/'] },
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
    },
  },
  {
    // The daemon's own code takes no exemptions: an `any` at the API
    // boundary is how a misspelled response field went unnoticed, and a
    // pragma is how the `any`s accumulated. A long function is where a
    // stream's state hid in booleans.
    files: ['src/**/*.ts'],
    linterOptions: { noInlineConfig: true },
    rules: {
      'max-lines-per-function': ['error', { max: 80 }],
    },
  },
  {
    // Tests and the benchmark poke at wire shapes no generated type allows.
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'warn',
      // chai's property assertions (`expect(x).to.be.empty`) are expressions.
      '@typescript-eslint/no-unused-expressions': 'off',
    },
  },
  {
    files: ['**/*.cjs'],
    languageOptions: { sourceType: 'commonjs' },
  },
);
