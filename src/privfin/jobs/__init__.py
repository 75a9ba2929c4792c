"""Jobs: the component registry now; spec, DAG, scheduler and approvals come with the platform."""
