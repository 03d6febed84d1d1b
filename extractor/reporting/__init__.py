"""What a person sees of a job: progress, status views, the report (Markdown, PNG chart)."""
