import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// The built client is served by the gateway under a strict Content-Security-Policy
// (default-src 'self'): no inline scripts or styles, one origin for the API and /ws.
export default defineConfig({
  plugins: [react()],
  build: { modulePreload: { polyfill: false }, assetsInlineLimit: 0, sourcemap: false },
  server: {
    proxy: {
      '/api': 'http://127.0.0.1:8080',
      '/ws': { target: 'ws://127.0.0.1:8080', ws: true },
    },
  },
  test: { environment: 'node', include: ['src/**/*.test.ts'] },
});
