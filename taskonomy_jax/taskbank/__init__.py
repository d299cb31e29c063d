"""The task bank: one network per task, run on an image, and pictures of what each predicts."""
