-- Receipts and the email step look up one user's deliveries of a notification; without this they read
-- every delivery of the notification (a broadcast's receipts would each scan it whole).
CREATE INDEX deliveries_by_notification_user ON deliveries (notification_id, user_id);
