"""The latencyslo inference worker: model variants, dynamic batching, HTTP and admin API."""
