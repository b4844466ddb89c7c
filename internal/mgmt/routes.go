package mgmt

// addRoutes declares the API: RabbitMQ's paths, methods and the tag each needs.
func (s *Server) addRoutes() {
	const get, put, del, post = "GET", "PUT", "DELETE", "POST"
	m, pm, mon, adm := levelManagement, levelPolicymaker, levelMonitor, levelAdmin

	s.handle(get, "/api/overview", m, s.overview)
	s.handle(get, "/api/cluster-name", m, s.getClusterName)
	s.handle(put, "/api/cluster-name", adm, s.putClusterName)
	s.handle(get, "/api/nodes", mon, s.listNodes)
	s.handle(get, "/api/nodes/{node}", mon, s.getNode)
	s.handle(get, "/api/extensions", m, func(r *req) error { return writeJSON(r.w, []obj{}) })
	s.handle(get, "/api/feature-flags", adm, func(r *req) error { return writeJSON(r.w, featureFlags) })
	s.handle(get, "/api/whoami", m, s.whoami)
	s.handle(get, "/api/auth", levelNone, func(r *req) error {
		return writeJSON(r.w, obj{"enable_uaa": false, "uaa_client_id": "", "uaa_location": "", "oauth_enabled": false})
	})

	s.handle(get, "/api/definitions", adm, s.getDefinitions)
	s.handle(post, "/api/definitions", adm, s.postDefinitions)
	s.handle(get, "/api/definitions/{vhost}", adm, s.getDefinitions)
	s.handle(post, "/api/definitions/{vhost}", adm, s.postDefinitions)

	s.handle(get, "/api/connections", m, s.listConnections)
	s.handle(get, "/api/connections/{name}", m, s.getConnection)
	s.handle(del, "/api/connections/{name}", m, s.closeConnection)
	s.handle(get, "/api/connections/{name}/channels", m, s.listChannels)
	s.handle(get, "/api/channels", m, s.listChannels)
	s.handle(get, "/api/channels/{name}", m, s.getChannel)
	s.handle(get, "/api/consumers", m, s.listConsumers)
	s.handle(get, "/api/consumers/{vhost}", m, s.listConsumers)

	s.handle(get, "/api/exchanges", m, s.listExchanges)
	s.handle(get, "/api/exchanges/{vhost}", m, s.listExchanges)
	s.handle(get, "/api/exchanges/{vhost}/{name}", m, s.getExchange)
	s.handle(put, "/api/exchanges/{vhost}/{name}", m, s.putExchange)
	s.handle(del, "/api/exchanges/{vhost}/{name}", m, s.deleteExchange)
	s.handle(get, "/api/exchanges/{vhost}/{name}/bindings/source", m, s.exchangeBindings(true))
	s.handle(get, "/api/exchanges/{vhost}/{name}/bindings/destination", m, s.exchangeBindings(false))
	s.handle(post, "/api/exchanges/{vhost}/{name}/publish", m, s.publish)

	s.handle(get, "/api/queues", m, s.listQueues)
	s.handle(get, "/api/queues/{vhost}", m, s.listQueues)
	s.handle(get, "/api/queues/{vhost}/{name}", m, s.getQueue)
	s.handle(put, "/api/queues/{vhost}/{name}", m, s.putQueue)
	s.handle(del, "/api/queues/{vhost}/{name}", m, s.deleteQueue)
	s.handle(get, "/api/queues/{vhost}/{name}/bindings", m, s.queueBindings)
	s.handle(del, "/api/queues/{vhost}/{name}/contents", m, s.purgeQueue)
	s.handle(post, "/api/queues/{vhost}/{name}/get", m, s.getMessages)

	s.handle(get, "/api/bindings", m, s.listBindings)
	s.handle(get, "/api/bindings/{vhost}", m, s.listBindings)
	for _, kind := range []struct {
		path       string
		toExchange bool
	}{{"q", false}, {"e", true}} {
		base := "/api/bindings/{vhost}/e/{source}/" + kind.path + "/{destination}"
		s.handle(get, base, m, s.listBetween(kind.toExchange))
		s.handle(post, base, m, s.postBinding(kind.toExchange))
		s.handle(get, base+"/{props}", m, s.getBinding(kind.toExchange))
		s.handle(del, base+"/{props}", m, s.deleteBinding(kind.toExchange))
	}

	s.handle(get, "/api/vhosts", m, s.listVHosts)
	s.handle(get, "/api/vhosts/{vhost}", m, s.getVHost)
	s.handle(put, "/api/vhosts/{vhost}", adm, s.putVHost)
	s.handle(del, "/api/vhosts/{vhost}", adm, s.deleteVHost)
	s.handle(get, "/api/vhosts/{vhost}/permissions", adm, s.listPermissions(false))
	s.handle(get, "/api/vhosts/{vhost}/topic-permissions", adm, s.listPermissions(true))
	s.handle(get, "/api/vhosts/{vhost}/connections", m, s.listConnections)
	s.handle(get, "/api/vhosts/{vhost}/channels", m, s.listChannels)

	s.handle(get, "/api/users", adm, s.listUsers(false))
	s.handle(get, "/api/users/without-permissions", adm, s.listUsers(true))
	s.handle(post, "/api/users/bulk-delete", adm, s.bulkDeleteUsers)
	s.handle(get, "/api/users/{user}", adm, s.getUser)
	s.handle(put, "/api/users/{user}", adm, s.putUser)
	s.handle(del, "/api/users/{user}", adm, s.deleteUser)
	s.handle(get, "/api/users/{user}/permissions", adm, s.listPermissions(false))
	s.handle(get, "/api/users/{user}/topic-permissions", adm, s.listPermissions(true))

	s.handle(get, "/api/permissions", adm, s.listPermissions(false))
	s.handle(get, "/api/permissions/{vhost}/{user}", adm, s.getPermission)
	s.handle(put, "/api/permissions/{vhost}/{user}", adm, s.putPermission)
	s.handle(del, "/api/permissions/{vhost}/{user}", adm, s.deletePermission)
	s.handle(get, "/api/topic-permissions", adm, s.listPermissions(true))
	s.handle(get, "/api/topic-permissions/{vhost}/{user}", adm, s.listPermissions(true))
	s.handle(put, "/api/topic-permissions/{vhost}/{user}", adm, s.putTopicPermission)
	s.handle(del, "/api/topic-permissions/{vhost}/{user}", adm, s.deleteTopicPermission)

	s.handle(get, "/api/policies", m, s.listPolicies(false))
	s.handle(get, "/api/policies/{vhost}", m, s.listPolicies(false))
	s.handle(get, "/api/policies/{vhost}/{name}", m, s.getPolicy(false))
	s.handle(put, "/api/policies/{vhost}/{name}", pm, s.putPolicy(false))
	s.handle(del, "/api/policies/{vhost}/{name}", pm, s.deletePolicy(false))
	s.handle(get, "/api/operator-policies", adm, s.listPolicies(true))
	s.handle(get, "/api/operator-policies/{vhost}", adm, s.listPolicies(true))
	s.handle(get, "/api/operator-policies/{vhost}/{name}", adm, s.getPolicy(true))
	s.handle(put, "/api/operator-policies/{vhost}/{name}", adm, s.putPolicy(true))
	s.handle(del, "/api/operator-policies/{vhost}/{name}", adm, s.deletePolicy(true))

	s.handle(get, "/api/parameters", pm, s.listParameters)
	s.handle(get, "/api/parameters/{component}", pm, s.listParameters)
	s.handle(get, "/api/parameters/{component}/{vhost}", pm, s.listParameters)
	s.handle(get, "/api/parameters/{component}/{vhost}/{name}", pm, s.getParameter)
	s.handle(put, "/api/parameters/{component}/{vhost}/{name}", pm, s.putParameter)
	s.handle(del, "/api/parameters/{component}/{vhost}/{name}", pm, s.deleteParameter)
	s.handle(get, "/api/global-parameters", adm, s.listGlobalParameters)
	s.handle(get, "/api/global-parameters/{name}", adm, s.getGlobalParameter)
	s.handle(put, "/api/global-parameters/{name}", adm, s.putGlobalParameter)
	s.handle(del, "/api/global-parameters/{name}", adm, s.deleteGlobalParameter)

	s.handle(get, "/api/vhost-limits", mon, s.listLimits(false))
	s.handle(get, "/api/vhost-limits/{vhost}", mon, s.listLimits(false))
	s.handle(put, "/api/vhost-limits/{vhost}/{name}", adm, s.putLimit(false))
	s.handle(del, "/api/vhost-limits/{vhost}/{name}", adm, s.deleteLimit(false))
	s.handle(get, "/api/user-limits", adm, s.listLimits(true))
	s.handle(get, "/api/user-limits/{user}", adm, s.listLimits(true))
	s.handle(put, "/api/user-limits/{user}/{name}", adm, s.putLimit(true))
	s.handle(del, "/api/user-limits/{user}/{name}", adm, s.deleteLimit(true))

	s.handle(get, "/api/aliveness-test/{vhost}", m, s.aliveness)
	s.handle(get, "/api/health/checks/alarms", m, s.checkAlarms)
	s.handle(get, "/api/health/checks/local-alarms", m, s.checkAlarms)
	s.handle(get, "/api/health/checks/port-listener/{port}", m, s.checkPort)
	s.handle(get, "/api/health/checks/protocol-listener/{protocol}", m, s.checkProtocol)
	ok := func(r *req) error { return statusOK(r, nil) }
	s.handle(get, "/api/health/checks/virtual-hosts", m, ok)
	single := func(r *req) error { return statusOK(r, obj{"reason": "single node cluster"}) }
	s.handle(get, "/api/health/checks/node-is-quorum-critical", m, single)
	s.handle(get, "/api/health/checks/node-is-mirror-sync-critical", m, single)
	s.handle(get, "/api/health/checks/certificate-expiration/{within}/{unit}", m, ok)
	s.handle(get, "/api/health/checks/is-in-service", m, ok)
	s.addKafkaRoutes()
}
