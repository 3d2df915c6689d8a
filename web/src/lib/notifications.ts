// The caller's in-app notifications (`/api/notifications`).

import { api } from './api';

export const notifications = {
  list: () => api.call((h) => h.GET('/api/notifications', { params: { query: { limit: 50 } } })),
  unreadCount: () => api.call((h) => h.GET('/api/notifications/unread-count')),
  markRead: (id: string, read: boolean) =>
    read
      ? api.call((h) => h.POST('/api/notifications/{id}/read', { params: { path: { id } } }))
      : api.call((h) => h.POST('/api/notifications/{id}/unread', { params: { path: { id } } })),
  readAll: () => api.call((h) => h.POST('/api/notifications/read-all')),
  remove: (id: string) => api.call((h) => h.DELETE('/api/notifications/{id}', { params: { path: { id } } })),
};
