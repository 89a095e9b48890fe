"""Result formats: Marteau's compact binary results, FunkLoad XML, merging nodes."""
