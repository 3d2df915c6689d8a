// Every operation of the OpenAPI document has its row in web/README.md ("Every operation has a
// place"): method, path, roles, screen, browser test. A row that says "API only" gives a reason.

import { describe, expect, it } from 'vitest';
import readme from '../../README.md?raw';
import openapi from '../../openapi.json?raw';

const METHODS = ['get', 'put', 'post', 'delete', 'patch'] as const;

/** `METHOD /path` of every operation in the committed document. */
function documented(): string[] {
  const doc = JSON.parse(openapi) as {
    paths: Record<string, Partial<Record<(typeof METHODS)[number], unknown>>>;
  };
  return Object.entries(doc.paths).flatMap(([path, item]) => METHODS.filter((m) => item[m]).map((m) => `${m.toUpperCase()} ${path}`));
}

interface Row {
  op: string;
  roles: string;
  screen: string;
  test: string;
}

/** The rows of the README's table of operations. */
function rows(): Row[] {
  const section = readme.split('## Every operation has a place')[1]?.split('\n## ')[0] ?? '';
  return section
    .split('\n')
    .map((line) => /^\| (GET|PUT|POST|DELETE|PATCH) \| `([^`]+)` \|(.*)\|\s*$/.exec(line))
    .filter((m) => m !== null)
    .map((m) => {
      const [roles = '', screen = '', test = ''] = m[3].split(' | ').map((c) => c.trim());
      return { op: `${m[1]} ${m[2]}`, roles, screen, test };
    });
}

describe('web/README.md, every operation has a place', () => {
  it('has one row for each operation of openapi.json, and none for an operation it lacks', () => {
    const ops = documented();
    expect(ops.length).toBeGreaterThan(40);
    const listed = rows().map((r) => r.op);
    expect(ops.filter((op) => !listed.includes(op)), 'operations without a row').toEqual([]);
    expect(listed.filter((op) => !ops.includes(op)), 'rows of unknown operations').toEqual([]);
    expect(listed.filter((op, i) => listed.indexOf(op) !== i), 'operations with two rows').toEqual([]);
  });

  it('fills every column, and says why an operation is API only', () => {
    for (const r of rows()) {
      expect(r.roles, `${r.op}: roles`).not.toBe('');
      expect(r.screen, `${r.op}: screen`).not.toBe('');
      expect(r.test, `${r.op}: browser test`).not.toBe('');
      if (/API only/i.test(r.screen)) expect(r.screen, `${r.op}: API only needs a reason`).toMatch(/^API only: \S.{9,}/);
    }
  });
});
