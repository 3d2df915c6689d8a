export type Status = 'requested' | 'offered' | 'confirmed' | 'completed' | 'no_show' | 'cancelled' | 'expired' | 'declined';

export interface Appointment {
  id: string;
  patient_id: string;
  doctor_id: string | null;
  group_id: string | null;
  specialty: string | null;
  status: Status;
  window_start: string;
  window_end: string;
  start: string | null;
  end: string | null;
  reason: string;
  closed_by: string | null;
  close_reason: string | null;
  created_at: string;
  version: number;
  pending_change?: { by: string; window_start?: string; window_end?: string; start?: string } | null;
  last_call?: { started_at: string; ended_at: string; total_seconds: number } | null;
}

export interface Offer {
  id: string;
  appointment_id: string;
  doctor_id: string;
  status: 'pending' | 'accepted' | 'declined' | 'withdrawn' | 'timed_out';
  deadline: string;
  created_at: string;
  decided_at: string | null;
  reason: string | null;
}

export interface DoctorSummary {
  id: string;
  display_name: string;
  specialties: string[];
}

export interface PublicProfile extends DoctorSummary {
  bio: string;
  time_zone: string;
  slot_minutes: number;
  auto_accept: boolean;
}

export interface Slot {
  start: string;
  end: string;
}

export interface Group {
  id: string;
  name: string;
  specialty: string | null;
  strategy: 'round_robin' | 'least_loaded' | 'broadcast';
  accept_deadline_secs: number;
  members: string[];
  version: number;
}

export interface Notification {
  id: string;
  kind: string;
  title: string;
  body: string;
  appointment_id: string | null;
  created_at: string;
  read_at: string | null;
}
