// Administration (`/api/admin/...`, active admins only): accounts, re-routing of open requests,
// the audit log. Groups are in `groups.ts`.

import { api, type Body, type Role, type UserStatus } from './api';

/** What an admin can do to an account, by the word its button says. */
export type AccountAction = 'approve' | 'reject' | 'disable' | 'enable';

export const admin = {
  users: (query: { role?: Role; status?: UserStatus; q?: string }) =>
    api.call((h) => h.GET('/api/admin/users', { params: { query: { limit: 100, ...query } } })),
  /**
   * Approves or rejects a pending doctor, disables or enables an account. Disabling a doctor
   * with confirmed appointments is refused (409 `appointments_affected`, listing them) unless
   * `force`: then they are cancelled and each patient is told `reason`.
   */
  account: (id: string, action: AccountAction, { force, reason }: { force?: boolean; reason?: string } = {}) => {
    const body: Body<'/api/admin/users/{id}/disable', 'post'> = {};
    if (force) body.force = true;
    if (reason) body.reason = reason;
    const at = { params: { path: { id } }, body };
    switch (action) {
      case 'approve':
        return api.call((h) => h.POST('/api/admin/users/{id}/approve', at));
      case 'reject':
        return api.call((h) => h.POST('/api/admin/users/{id}/reject', at));
      case 'disable':
        return api.call((h) => h.POST('/api/admin/users/{id}/disable', at));
      case 'enable':
        return api.call((h) => h.POST('/api/admin/users/{id}/enable', at));
    }
  },
  /** Sends an open request to a group instead. */
  reroute: (id: string, group: string) =>
    api.call((h) => h.POST('/api/admin/appointments/{id}/reroute', { params: { path: { id } }, body: { target: { group } } satisfies Body<'/api/admin/appointments/{id}/reroute', 'post'> })),
  /** Declines an open request (the patient is told `reason`). */
  decline: (id: string, reason: string) =>
    api.call((h) => h.POST('/api/admin/appointments/{id}/decline', { params: { path: { id } }, body: { reason } satisfies Body<'/api/admin/appointments/{id}/decline', 'post'> })),
  /** One page of appointments, all of them for an admin. */
  appointments: (cursor?: string) => api.call((h) => h.GET('/api/appointments', { params: { query: { limit: 100, cursor } } })),
  audit: (subjectId?: string) => api.call((h) => h.GET('/api/admin/audit', { params: { query: { limit: 100, subject_id: subjectId } } })),
};
