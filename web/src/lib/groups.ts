// Routing groups (doctor departments): the list patients choose from, and the admin's own
// management of them (`/api/admin/groups`).

import { api, type Body } from './api';

export const groups = {
  /** The groups a patient can send a request to. */
  list: () => api.call((h) => h.GET('/api/groups')),
  all: () => api.call((h) => h.GET('/api/admin/groups')),
  create: (body: Body<'/api/admin/groups', 'post'>) => api.call((h) => h.POST('/api/admin/groups', { body })),
  /** Replaces a group if it is still at `version` (sent as `If-Match`). */
  update: (id: string, version: number, body: Body<'/api/admin/groups/{id}', 'put'>) =>
    api.call((h) => h.PUT('/api/admin/groups/{id}', { body, params: { path: { id }, header: { 'If-Match': `"${version}"` } } })),
};
